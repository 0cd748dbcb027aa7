"""The base inputs of the recommendations' FHIRPath: the facts the service supplies, as named inputs.

Conditions speak of records only through `memberOf()` our ValueSets, so a record coded in none of
them can never matter: the collections below hold only records coded in some loaded ValueSet, which
keeps evaluation fast on long records.

What each input holds is documented once, in the Library's parameters
(`plandefinitions/Library-efns-ivig-data-requirements.json`), and the loader refuses a Library whose parameters
are not exactly BASE_INPUTS. Everything else a condition reads is a named definition in the knowledge
(see definitions.py). A name whose fact is unknown is an empty collection: FHIRPath then yields empty,
and an empty condition does not apply. We never fill a gap with a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from .fhirjson import code_of, obj, recorded_at, text
from .fhirjson import element as fhir_element
from .regimen import Course, DosingWeight, dosing_weight
from .terminology import ConceptIndex

#: the data requirement (prefetch key) that holds body weights: weights and lab results are both Observations
WEIGHT_REQUIREMENT = "weight"

#: the names named_inputs() supplies; the Library documents each
BASE_INPUTS = (
    "hook", "patient", "ageYears", "conditions", "conditionHistory", "guidelineDiagnoses", "weightKg", "observations", "medications",
    "ivigCourses", "procedures", "plannedProcedures", "order", "orderDays", "orderDosePerKgPerDay", "draftDosesPerKgPerDay",
    "courseTotalPerKg",
    "courseReadable", "highestCourseTotalPerKg", "doseTolerance", "routeUndetermined",
)

#: the oldest age taken as real: the service's policy, above the oldest verified human age
MAX_AGE_YEARS = 125

_NOT_A_DIAGNOSIS = {"refuted", "entered-in-error", "unconfirmed", "provisional", "differential"}
_NOT_ON_RECORD = {"refuted", "entered-in-error"}
_ACTIVE = {"active", "recurrence", "relapse"}
_RESULT_STATUSES = {"final", "amended", "corrected"}


@dataclass(frozen=True)
class PatientFacts:
    """What the record says about the patient, read once per hook call from prefetch or the FHIR server."""

    patient: dict | None = None
    conditions: list[dict] = field(default_factory=list)
    condition_history: list[dict] = field(default_factory=list)
    weight: DosingWeight | None = None
    weight_note: str | None = "No body weight is on record."  # why there is no usable weight
    observations: list[dict] = field(default_factory=list)
    medications: list[dict] = field(default_factory=list)
    medication_history: list[dict] = field(default_factory=list)
    administrations: list[dict] = field(default_factory=list)
    procedures: list[dict] = field(default_factory=list)
    planned_procedures: list[dict] = field(default_factory=list)

    def age_years(self, today: date) -> int | None:
        """Whole years at today; None when the birth date is missing, unreadable, in the future or more than
        MAX_AGE_YEARS ago (a typing error, not an age: we never guess one)."""
        born = _date((self.patient or {}).get("birthDate"))
        if born is None or born > today:
            return None
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        return age if age <= MAX_AGE_YEARS else None


def facts_from(prefetch: Mapping[str, Any]) -> PatientFacts:
    """Sort prefetch results into facts by resource type, whatever key brought them; the body weight
    is the one fact read from its own key (WEIGHT_REQUIREMENT), since weights and lab results are both Observations."""
    by_type: dict[str, list[dict]] = {}
    for key, value in prefetch.items():
        if key != WEIGHT_REQUIREMENT:
            for resource in _resources(value):
                by_type.setdefault(resource["resourceType"], []).append(resource)
    conditions = by_type.get("Condition", [])
    medication_requests = by_type.get("MedicationRequest", [])
    procedures = by_type.get("Procedure", [])
    weights = sorted(filter(_is_result, (r for r in _resources(prefetch.get(WEIGHT_REQUIREMENT)) if r["resourceType"] == "Observation")),
                     key=_when_recorded, reverse=True)
    weight, weight_note = _latest_weight(weights)
    patients = by_type.get("Patient", [])
    return PatientFacts(
        patient=patients[0] if patients else None,
        conditions=[c for c in conditions if _is_diagnosis(c)],
        condition_history=[c for c in conditions if code_of(c, "verificationStatus") not in _NOT_ON_RECORD],
        weight=weight,
        weight_note=weight_note,
        observations=sorted(filter(_is_result, by_type.get("Observation", [])), key=_when_recorded, reverse=True),
        medications=[m for m in medication_requests if m.get("status") in ("active", "on-hold")],
        medication_history=[m for m in medication_requests if m.get("status") not in ("entered-in-error", "cancelled", "draft")],
        administrations=[a for a in by_type.get("MedicationAdministration", []) if a.get("status") in ("completed", "in-progress")],
        procedures=[p for p in procedures if p.get("status") in ("completed", "in-progress")],
        planned_procedures=[r for r in by_type.get("ServiceRequest", [])
                            if r.get("status") in ("active", "on-hold", "draft") and r.get("doNotPerform") is not True]
        + [p for p in procedures if p.get("status") == "preparation"],
    )


def named_inputs(
    facts: PatientFacts,
    *,
    hook: str,
    orders: Sequence[dict],
    other_orders: Iterable[dict],
    course: Course,
    highest_total_per_kg: Decimal | None,
    dose_tolerance: Decimal,
    route_undetermined: bool,
    is_ivig: Callable[[dict], bool],
    index: ConceptIndex,
    indications: frozenset[str],
    today: date,
) -> dict[str, Any]:
    """The %names for the IVIG draft orders of one call, taken as one course. `indications`: the diagnosis ValueSets
    some recommendation is for."""

    def coded(resources: Iterable[dict], element: str = "code") -> list[dict]:
        return [r for r in resources if index.is_known(fhir_element(r, element))]

    conditions = coded(facts.conditions)

    draft = course.single
    per_kg = draft.per_kg_per_day(facts.weight) if draft is not None else None
    total = course.total_per_kg(facts.weight)
    age = facts.age_years(today)
    other_orders = list(other_orders)
    other_medications = [o for o in other_orders if o.get("resourceType") == "MedicationRequest"]
    drafted_procedures = [o for o in other_orders if o.get("resourceType") == "ServiceRequest" and o.get("doNotPerform") is not True]
    return {
        "hook": hook,
        "patient": facts.patient or [],
        "ageYears": age if age is not None else [],
        "conditions": conditions,
        "conditionHistory": coded(facts.condition_history),
        "guidelineDiagnoses": [c for c in conditions if index.valuesets(c.get("code")) & indications],
        "weightKg": facts.weight.kg if facts.weight else [],
        "observations": coded(facts.observations),
        "medications": coded(facts.medications + other_medications, "medication"),
        "ivigCourses": sorted(
            (m for m in facts.medication_history + facts.administrations if m.get("status") != "stopped" and is_ivig(m)),
            key=_when_recorded,
            reverse=True,
        ),
        "procedures": coded(facts.procedures),
        "plannedProcedures": coded(facts.planned_procedures + drafted_procedures),
        "order": orders[0] if orders else [],
        "orderDays": draft.days if draft is not None and draft.days is not None else [],
        "orderDosePerKgPerDay": per_kg if per_kg is not None else [],
        "draftDosesPerKgPerDay": course.daily_doses_per_kg(facts.weight),
        "courseTotalPerKg": total if total is not None else [],
        "courseReadable": course.readable,
        "highestCourseTotalPerKg": highest_total_per_kg if highest_total_per_kg is not None else [],
        "doseTolerance": dose_tolerance,
        "routeUndetermined": route_undetermined,
    }


def _when_recorded(record: dict) -> str:
    return recorded_at(record) or ""


def _latest_weight(weights: list[dict]) -> tuple[DosingWeight | None, str | None]:
    """The latest body weight, or why there is none we can dose by (an older weight is not a stand-in)."""
    if not weights:
        return None, "No body weight is on record."
    weight = dosing_weight(weights[0])
    if weight is None:
        quantity = obj(weights[0].get("valueQuantity"))
        unit = text(quantity.get("code")) or text(quantity.get("unit")) or "no unit"
        return None, f"The latest body weight ({recorded_at(weights[0]) or 'undated'}) is not a usable value in kg or [lb_av] ({unit})."
    return weight, None


def _resources(value: Any) -> list[dict]:
    """The resources in a searchset Bundle (or a single resource); OperationOutcomes are dropped."""
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return []
    if value["resourceType"] != "Bundle":
        return [] if value["resourceType"] == "OperationOutcome" else [value]
    entries: list = value["entry"] if isinstance(value.get("entry"), list) else []
    return [
        e["resource"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("resource"), dict) and isinstance(e["resource"].get("resourceType"), str)
        and e["resource"]["resourceType"] != "OperationOutcome"
    ]


def _is_diagnosis(condition: dict) -> bool:
    return code_of(condition, "clinicalStatus") in _ACTIVE and code_of(condition, "verificationStatus") not in _NOT_A_DIAGNOSIS


def _is_result(observation: dict) -> bool:
    return text(observation.get("status")) in _RESULT_STATUSES


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
