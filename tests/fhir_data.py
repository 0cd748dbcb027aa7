"""Builders for the FHIR data and CDS Hooks requests the tests send, so each test says only what matters to it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

BASE = "http://ivig-cds.org/fhir"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ATC = "http://www.whocc.no/atc"
UCUM = "http://unitsofmeasure.org"
PATIENT_ID = "pat-1"


def days_ago(n: int) -> str:
    return (date.today() - timedelta(days=n)).isoformat()


def patient(birth_date: str = "1970-05-01") -> dict:
    return {"resourceType": "Patient", "id": PATIENT_ID, "birthDate": birth_date}


def condition(code: str, system: str = ICD10CM, display: str = "", *, clinical: str = "active",
              verification: str = "confirmed", onset: str | None = None, recorded: str | None = None) -> dict:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": f"cond-{uuid.uuid4().hex[:8]}",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]},
        "code": {"coding": [{"system": system, "code": code, "display": display or code}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if onset:
        resource["onsetDateTime"] = onset
    if recorded:
        resource["recordedDate"] = recorded
    return resource


def observation(code: str, value: float, unit: str, *, when: str | None = None, low: float | None = None,
                high: float | None = None, status: str = "final", display: str = "") -> dict:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"obs-{uuid.uuid4().hex[:8]}",
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": code, "display": display or code}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": when or days_ago(2),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }
    if low is not None or high is not None:
        resource["referenceRange"] = [{k: {"value": v, "unit": unit, "system": UCUM, "code": unit}
                                       for k, v in (("low", low), ("high", high)) if v is not None}]
    return resource


def weight(value: float, unit: str = "kg", when: str | None = None) -> dict:
    return observation("29463-7", value, unit, when=when, display="Body weight")


def medication_request(code: str, system: str = ATC, display: str = "", *, status: str = "active",
                       authored: str | None = None, id: str | None = None, text: str | None = None) -> dict:
    concept: dict[str, Any] = {"coding": [{"system": system, "code": code, "display": display or code}]} if code else {}
    if text:
        concept["text"] = text
    return {
        "resourceType": "MedicationRequest",
        "id": id or f"mr-{uuid.uuid4().hex[:8]}",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": concept,
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": authored or days_ago(0),
    }


def earlier_ivig_course(days_before: int = 21, status: str = "completed") -> dict:
    """An IVIG MedicationRequest on record (an earlier course), authored `days_before` days ago."""
    return medication_request("J06BA02", status=status, authored=days_ago(days_before))


def corticosteroid(code: str = "H02AB07", display: str = "prednisone", status: str = "active") -> dict:
    """A corticosteroid MedicationRequest on record (prednisone unless told otherwise)."""
    return medication_request(code, display=display, status=status)


def suggested_courses(card: dict) -> list[tuple[float, int]]:
    """(daily grams, days) of each suggestion on a card, in the card's order; [] when it has none."""
    courses = []
    for suggestion in card.get("suggestions", []):
        dosage = suggestion["actions"][0]["resource"]["dosageInstruction"][0]
        courses.append((dosage["doseAndRate"][0]["doseQuantity"]["value"], dosage["timing"]["repeat"]["boundsDuration"]["value"]))
    return courses


def ivig_order(*, id: str = "ivig-1", daily_g: float | None = None, days: int | None = None,
               per_kg: float | None = None, coding: tuple[str, str] = (ATC, "J06BA02"), text: str | None = None) -> dict:
    """A draft IVIG MedicationRequest; dose and days only when given (order-select drafts often lack them)."""
    order = medication_request(coding[1], coding[0], "immunoglobulins, normal human, for intravascular adm.",
                               status="draft", id=id, text=text)
    instruction: dict[str, Any] = {}
    if days is not None:
        instruction["timing"] = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d",
                                            "boundsDuration": {"value": days, "unit": "d", "system": UCUM, "code": "d"}}}
    if daily_g is not None or per_kg is not None:
        unit, value = ("g", daily_g) if daily_g is not None else ("g/kg", per_kg)
        instruction["doseAndRate"] = [{"doseQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}]
    if instruction:
        order["dosageInstruction"] = [instruction]
    return order


def dosed_ivig_order(value: Any, unit: str | None, *, code: str | None = "same", id: str = "ivig-1", **repeat: Any) -> dict:
    """A draft IVIG order written as an EHR may write it: a dose of `value` in `unit` (UCUM `code`, the same by default;
    None for the unit word alone) and `repeat` as its timing.repeat (frequency, period, periodUnit, boundsDuration,
    boundsPeriod, count), once a day unless it says otherwise."""
    order = ivig_order(id=id)
    quantity: dict[str, Any] = {"value": value}
    if unit is not None:
        quantity["unit"] = unit
    if code is not None:
        quantity.update(system=UCUM, code=unit if code == "same" else code)
    order["dosageInstruction"] = [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", **repeat}},
                                   "doseAndRate": [{"doseQuantity": quantity}]}]
    return order


def duration(value: Any, unit: str, code: str | None = "same") -> dict:
    """A boundsDuration: UCUM `code` (the same as the unit by default), or the unit word alone when code is None."""
    return {"value": value, "unit": unit, **({"system": UCUM, "code": unit if code == "same" else code} if code else {})}


def _coded_record(resource_type: str, id: str, status: str, concept: str, code: str, system: str, **fields: Any) -> dict:
    """A `resource_type` of the patient with `status`, coded (the code as its display) in its element `concept`,
    then `fields`."""
    return {
        "resourceType": resource_type,
        "id": id,
        "status": status,
        concept: {"coding": [{"system": system, "code": code, "display": code}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        **fields,
    }


def procedure(code: str, system: str = SNOMED, *, performed: str | None = None, status: str = "completed") -> dict:
    return _coded_record("Procedure", f"proc-{uuid.uuid4().hex[:8]}", status, "code", code, system,
                         performedDateTime=performed or days_ago(3))


def bundle(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in resources]}


def prefetch(*, conditions: list[dict] = (), weights: list[dict] = (), labs: list[dict] = (),
             medications: list[dict] = (), administrations: list[dict] = (), procedures: list[dict] = (),
             service_requests: list[dict] = (), patient_resource: dict | None = None) -> dict:
    """Every prefetch key the service announces, as a searchset (empty unless given)."""
    return {
        "patient": patient_resource or patient(),
        "conditions": bundle(list(conditions)),
        "weight": bundle(list(weights)),
        "labs": bundle(list(labs)),
        "medications": bundle(list(medications)),
        "administrations": bundle(list(administrations)),
        "procedures": bundle(list(procedures)),
        "serviceRequests": bundle(list(service_requests)),
    }


def administration(code: str = "J06BA02", system: str = ATC, *, when: str | None = None, status: str = "completed") -> dict:
    return _coded_record("MedicationAdministration", f"ma-{uuid.uuid4().hex[:8]}", status, "medicationCodeableConcept",
                         code, system, effectiveDateTime=when or days_ago(10))


def service_request(code: str, system: str = SNOMED, *, status: str = "active", id: str | None = None) -> dict:
    return _coded_record("ServiceRequest", id or f"sr-{uuid.uuid4().hex[:8]}", status, "code", code, system, intent="order")


def hook_request(orders: list[dict], *, hook: str = "order-select", prefetch: dict | None = None,
                 selections: list[str] | None = None, **extra: Any) -> dict:
    context: dict[str, Any] = {
        "userId": "Practitioner/dr-1",
        "patientId": PATIENT_ID,
        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": o} for o in orders]},
    }
    if hook == "order-select":
        context["selections"] = selections if selections is not None else [f"{orders[0]['resourceType']}/{orders[0]['id']}"]
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


def for_patient(body: dict, patient_id: str) -> dict:
    """The same request about another patient id: the context, the Patient resource and every reference to the
    patient (a record about another patient than the context's is no fact about it, subject.py)."""
    rewritten = json.loads(json.dumps(body).replace(json.dumps(f"Patient/{PATIENT_ID}"), json.dumps(f"Patient/{patient_id}")))
    for resource in objects_in(rewritten):
        if resource.get("resourceType") == "Patient" and resource.get("id") == PATIENT_ID:
            resource["id"] = patient_id
    rewritten["context"]["patientId"] = patient_id
    return rewritten


def gbs(**kwargs: Any) -> dict:
    return condition("G61.0", display="Guillain-Barre syndrome", **kwargs)


def cidp(**kwargs: Any) -> dict:
    return condition("G61.81", display="Chronic inflammatory demyelinating polyneuritis", **kwargs)


def mmn(**kwargs: Any) -> dict:
    return condition("G61.82", display="Multifocal motor neuropathy", **kwargs)


def objects_in(value: Any) -> Iterator[dict]:
    """Every JSON object in a request or resource, the outermost first."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from objects_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from objects_in(item)
