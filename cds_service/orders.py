"""Which draft orders are IVIG orders: the only orders this service speaks about.

An order is IVIG when its medication is in the IVIG ValueSet (ATC J06BA02, the NDC products in
codes.csv) or, because many EHRs send local codes, when its medication text says immunoglobulin
given intravenously. Subcutaneous immunoglobulin (ATC J06BA01, or "subcutaneous" in the text) is
not IVIG: its dosing is different and the guideline does not cover it. Anything else is silence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .fhirjson import obj, objects, text
from .knowledge import CANONICAL_BASE
from .terminology import Terminology

IVIG_VALUESET = f"{CANONICAL_BASE}/ValueSet/ivig"
SUBCUTANEOUS_VALUESET = f"{CANONICAL_BASE}/ValueSet/subcutaneous-immunoglobulin"

_IMMUNOGLOBULIN = re.compile(r"immun[eo]\s*-?\s*globulin|immunoglobulin|\bIVIG\b|\bIGIV\b", re.IGNORECASE)
_INTRAVENOUS = re.compile(r"intravenous|\bi\.?v\.?\b|\bIVIG\b|\bIGIV\b", re.IGNORECASE)
_SUBCUTANEOUS = re.compile(r"subcutaneous|\bs\.?c\.?\b|\bSCIG\b|\bfscig\b|intramuscular|\bi\.?m\.?\b", re.IGNORECASE)


def medication_concept(order: Mapping[str, Any]) -> dict | None:
    """The CodeableConcept naming a MedicationRequest's medication, through a contained Medication if need be."""
    concept = order.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    reference = obj(order.get("medicationReference"))
    target = text(reference.get("reference")) or ""
    if target.startswith("#"):
        for contained in objects(order.get("contained")):
            if contained.get("resourceType") == "Medication" and contained.get("id") == target[1:]:
                return obj(contained.get("code")) or None
    display = text(reference.get("display"))
    return {"text": display} if display else None


def is_ivig(order: Mapping[str, Any], terminology: Terminology) -> bool:
    """For a MedicationRequest (a draft order or an earlier course) or a MedicationAdministration."""
    if not isinstance(order, Mapping) or order.get("resourceType") not in ("MedicationRequest", "MedicationAdministration"):
        return False
    concept = medication_concept(order)
    if concept is None:
        return False
    valuesets = terminology.codings_in(concept)
    if SUBCUTANEOUS_VALUESET in valuesets:
        return False
    if IVIG_VALUESET in valuesets:
        return True
    names = " ".join(_texts(concept))
    routes = " ".join(_route_texts(order))
    if _SUBCUTANEOUS.search(names) or _SUBCUTANEOUS.search(routes):
        return False
    return bool(_IMMUNOGLOBULIN.search(names) and (_INTRAVENOUS.search(names) or _INTRAVENOUS.search(routes)))


def _texts(concept: Mapping[str, Any]) -> Iterator[str]:
    if text(concept.get("text")):
        yield concept["text"]
    for coding in objects(concept.get("coding")):
        if text(coding.get("display")):
            yield coding["display"]


def _route_texts(order: Mapping[str, Any]) -> Iterator[str]:
    instructions = objects(order.get("dosageInstruction")) or objects([order.get("dosage")])  # an administration has one
    for instruction in instructions:
        if text(instruction.get("text")):
            yield instruction["text"]
        yield from _texts(obj(instruction.get("route")))
