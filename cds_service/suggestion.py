"""The order a suggestion proposes: the draft's identity and context, the regimen's dosage, valid R4.

A clinician signs it with one click, so nothing may be copied from the draft that the R4 model refuses or that
would contradict the course (supply, repeats, substitution)."""

from __future__ import annotations

import copy
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest

from .fhirjson import obj, objects, text

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
        return {**resource, **copy.deepcopy(kept)}
    for name, value in kept.items():  # keep each element the model accepts
        if _valid({**bare, name: value}):
            resource[name] = copy.deepcopy(value)
    return resource


def _valid(resource: dict) -> bool:
    try:
        MedicationRequest.model_validate(resource)
    except (ValueError, TypeError):
        return False
    return True
