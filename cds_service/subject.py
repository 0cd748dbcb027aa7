"""Whose record is it: a record about another patient is never a fact about this one.

An EHR may send, in prefetch or a FHIR search, a record whose subject is another patient (a merged chart, a mother's
weight in a newborn's query, a badly scoped search). Dosing by another patient's weight, or warning about another
patient's kidneys, is wrong in the most direct way, so such a record is left out before anything reads it. A record
is another patient's when its `subject` or `patient` is a literal reference to a Patient with another id
("Patient/2", "https://ehr.example/fhir/Patient/2/_history/3"); a Patient resource is another patient when its id
differs. A reference the service cannot resolve to an id (a display, an identifier, a `urn:uuid:`) is not taken as
another patient's: it says nothing either way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: a literal reference to a Patient, relative or absolute, with or without a version: the id is group 1
_PATIENT_REFERENCE = re.compile(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def about_another_patient(resource: Mapping[str, Any], patient_id: str | None) -> bool:
    """Is this resource (a Patient, or a record with a `subject` or `patient`) about a patient other than `patient_id`?
    False when `patient_id` is None (no context patient to compare with) or when the reference cannot tell. Called
    for every record of a call, so the usual case (a reference "Patient/<patient_id>" or none) costs two lookups."""
    if patient_id is None:
        return False
    if resource.get("resourceType") == "Patient":
        return isinstance(own := resource.get("id"), str) and own != patient_id
    for element in ("subject", "patient"):
        reference = resource.get(element)
        reference = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(reference, str) or reference == "Patient/" + patient_id:
            continue
        match = _PATIENT_REFERENCE.search(reference)
        if match is not None and match.group(1) != patient_id:
            return True
    return False
