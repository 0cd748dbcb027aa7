"""The order a suggestion proposes: the draft's identity and context, the regimen's dosage, valid R4.

A clinician signs it with one click, so nothing may be copied from the draft that the R4 model refuses or that
would contradict the course (supply, repeats, substitution)."""

from __future__ import annotations

import json
from typing import Any, cast

from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir_core.utils import is_list_type, is_primitive_type
from pydantic import TypeAdapter

from .fhirjson import copied, obj, objects, text

#: what a suggested order keeps from the draft: its identity, its medication and its context. Nothing about supply,
#: dispensing or substitution is kept, since a draft's 30-day supply or repeats would contradict the course.
_KEPT_OBJECTS = ("medicationCodeableConcept", "medicationReference", "subject", "encounter", "requester")
_KEPT_LISTS = ("identifier", "reasonCode", "reasonReference", "note")
_INTENTS = frozenset({"proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"})


def suggested_order(order: dict, instruction: dict, patient_id: str | None) -> dict:
    """A valid R4 MedicationRequest for the regimen: the draft's id, medication and context, the new dosage.

    EHR drafts are often not valid FHIR (the Sandbox sends `category` as an object); an element of the wrong shape,
    or one the R4 model refuses, is left out rather than copied into an order the clinician signs with one click."""
    resource: dict[str, Any] = {"resourceType": "MedicationRequest"}
    if isinstance(order.get("id"), str):
        resource["id"] = order["id"]
    resource["status"] = "draft"
    resource["intent"] = order["intent"] if text(order.get("intent")) in _INTENTS else "order"
    resource["dosageInstruction"] = [instruction]
    if patient_id:
        resource["subject"] = {"reference": f"Patient/{patient_id}"}
    kept: dict[str, Any] = {k: order[k] for k in _KEPT_OBJECTS if isinstance(order.get(k), dict)}
    kept.update({k: order[k] for k in _KEPT_LISTS if isinstance(order.get(k), list) and order[k]})
    if isinstance(order.get("authoredOn"), str):
        kept["authoredOn"] = order["authoredOn"]
    reference = text(obj(order.get("medicationReference")).get("reference")) or ""
    if reference.startswith("#"):
        kept["contained"] = [c for c in objects(order.get("contained")) if c.get("id") == reference[1:]]
    # The dosage is ours and of one fixed shape (tests validate it); what can be invalid is what the draft brings, so
    # that is what the R4 model checks, on a resource without the dosage (validating the whole order costs twice).
    bare = {k: v for k, v in resource.items() if k != "dosageInstruction"}
    if _valid({**bare, **kept}):
        return {**resource, **copied(kept)}
    for name, value in kept.items():  # keep each element the model accepts
        if _valid({**bare, name: value}):
            resource[name] = copied(value)
    return resource


def _valid(resource: dict) -> bool:
    """Would the R4 model accept this MedicationRequest? Asked of each element on its own, by the element's own type,
    and of the rules the model checks across elements (what is required, one medication[x], no null in a list of
    elements): the model's answer (tests/test_suggestion_check.py compares both), without building the whole model for
    each draft. An element the check does not know alone sends the resource to the whole model."""
    if resource.get("resourceType") != "MedicationRequest":
        return _valid_whole(resource)
    for name, value in resource.items():
        if name == "resourceType":
            continue
        if name not in _ELEMENT_TYPES:
            return _valid_whole(resource)
        if not _element_valid(name, value):
            return False
    if any(resource.get(name) is None for name in _REQUIRED):
        return False
    return all(sum(resource.get(name) is not None for name in names) == 1 for names in _ONE_REQUIRED)


def _valid_whole(resource: dict) -> bool:
    try:
        MedicationRequest.model_validate(resource)
    except (ValueError, TypeError):
        return False
    return True


def _element_valid(name: str, value: Any) -> bool:
    """One element by its type in the R4 model, remembered by its content (a medication's concept comes again and
    again); bounded, since drafts can carry anything."""
    key = (name, _content(value))
    known = _verdicts.get(key)
    if known is None:
        if len(_verdicts) >= _MAX_VERDICTS:
            _verdicts.clear()
        known = _verdicts[key] = _element_valid_now(name, value)
    return known


def _element_valid_now(name: str, value: Any) -> bool:
    if name in _COMPLEX_LISTS and isinstance(value, list) and any(item is None for item in value):
        return False  # the model refuses a null in a list of elements (fhir_core's reject_null_complex_elements)
    try:
        _ELEMENT_TYPES[name].validate_python(value)
    except (ValueError, TypeError):
        return False
    return True


_FIELDS = MedicationRequest.model_fields


def _extra(name: str) -> dict[str, Any]:
    extra = _FIELDS[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


#: the elements a suggested order may hold, each with its R4 type: ours (id, status, intent, subject, dosage) and the
#: draft's that are kept
_ELEMENT_TYPES: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(cast(Any, _FIELDS[name].annotation))
    for name in ("id", "status", "intent", "subject", "dosageInstruction", "authoredOn", "contained", *_KEPT_OBJECTS, *_KEPT_LISTS)
}
_COMPLEX_LISTS = frozenset(name for name in _ELEMENT_TYPES if is_list_type(_FIELDS[name]) and not is_primitive_type(_FIELDS[name]))
_REQUIRED = tuple(name for name, field in _FIELDS.items() if field.is_required() or _extra(name).get("element_required"))
#: the choice elements of which exactly one must be present (medication[x])
_ONE_REQUIRED = tuple(
    tuple(name for name in _FIELDS if _extra(name).get("one_of_many") == group)
    for group in dict.fromkeys(_extra(name)["one_of_many"] for name in _FIELDS if _extra(name).get("one_of_many_required"))
)
_MAX_VERDICTS = 4096
#: an element's content as text, the same whatever the order of its keys (json.dumps with these options, made once)
_content = json.JSONEncoder(sort_keys=True, default=repr).encode
_verdicts: dict[tuple[str, str], bool] = {}
