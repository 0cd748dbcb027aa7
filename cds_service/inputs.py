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

import calendar
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from .fhirjson import code_of, instant, objects, recorded_at, text
from .fhirjson import element as fhir_element
from .orders import OrderKind
from .readable import unreadable, without_times
from .regimen import Course, DosingWeight
from .subject import about_another_patient
from .terminology import ConceptIndex

#: the data requirement (prefetch key) that holds body weights: weights and lab results are both Observations
WEIGHT_REQUIREMENT = "weight"

#: the names named_inputs() supplies; the Library documents each
BASE_INPUTS = (
    "hook", "patient", "ageYears", "conditions", "conditionHistory", "guidelineDiagnoses", "weightKg", "observations", "medications",
    "ivigCourses", "procedures", "plannedProcedures", "unconfirmedGuidelineDiagnoses", "unreadableRecords",
    "order", "orderDays", "orderDosePerKgPerDay", "draftDosesPerKgPerDay", "courseTotalPerKg", "courseLeastPerKgAnyWeight",
    "courseReadable", "highestCourseTotalPerKg", "doseTolerance", "routeUndetermined",
    "routeNotLicensed", "routeUnsettledCourses",
)

#: the oldest age taken as real: the service's policy, above the oldest verified human age
MAX_AGE_YEARS = 125

_UNCONFIRMED = {"unconfirmed", "provisional", "differential"}
_NOT_A_DIAGNOSIS = {"refuted", "entered-in-error"} | _UNCONFIRMED
#: clinical statuses of a diagnosis the patient has now. "remission" is one: FHIR R4 defines it as no symptoms now with a
#: risk of their return, which is what a CIDP, MMN or MG kept in remission by maintenance IVIG is; the guideline's
#: maintenance advice is for exactly those patients (inactive and resolved are not)
_ACTIVE = {"active", "recurrence", "relapse", "remission"}
#: Condition categories (or none) under which FHIR R4 lets a diagnosis go without a clinicalStatus (con-3 requires one
#: on the problem list only): an encounter's diagnosis is current for that encounter unless it says it has abated
_ENCOUNTER_DIAGNOSIS = "encounter-diagnosis"
_ABATEMENT = ("abatementDateTime", "abatementAge", "abatementPeriod", "abatementRange", "abatementString")
#: the instant of an undated record: it sorts after every dated one
_UNDATED = datetime.min.replace(tzinfo=UTC)
#: Observation statuses of what was never a measurement of this patient: not on record at all
_NOT_RECORDED = ("entered-in-error", "cancelled")
RESULT_STATUSES = {"final", "amended", "corrected"}  # an Observation that is a result to act on


@dataclass(frozen=True)
class PatientFacts:
    """What the record says about the patient, read once per hook call from prefetch or the FHIR server."""

    patient: dict | None = None
    conditions: list[dict] = field(default_factory=list)
    condition_history: list[dict] = field(default_factory=list)
    #: current diagnoses recorded as unconfirmed, provisional or differential: not diagnoses yet, but not "nothing" either
    unconfirmed_conditions: list[dict] = field(default_factory=list)
    #: the body-weight requirement's records, newest first, final or not (preliminary: body_weight says why it is not
    #: used); engine.prepare picks the dosing weight from them, since which codes are body weights is the knowledge's
    weight_records: list[dict] = field(default_factory=list)
    weight: DosingWeight | None = None
    weight_note: str | None = "No body weight is on record."  # why there is no usable weight
    observations: list[dict] = field(default_factory=list)
    medications: list[dict] = field(default_factory=list)
    medication_history: list[dict] = field(default_factory=list)
    administrations: list[dict] = field(default_factory=list)
    procedures: list[dict] = field(default_factory=list)
    planned_procedures: list[dict] = field(default_factory=list)
    #: records that would have counted but cannot be read (readable.py), each with why; left out of everything above
    unreadable: list[tuple[dict, str]] = field(default_factory=list)

    def age_years(self, today: date) -> int | None:
        """Whole years at today; None when the birth date is missing, unreadable, in the future or more than
        MAX_AGE_YEARS ago (a typing error, not an age: we never guess one). A birth date FHIR gives only to the year
        or month ("2016", "2016-05") counts from its last possible day: the youngest the patient can be, so a child
        is never taken for an adult (an 18-year-old may be taken for 17)."""
        birth = (self.patient or {}).get("birthDate")
        born = _date(birth) or _last_possible_day(birth, today)
        if born is None or born > today:
            return None
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        return age if age <= MAX_AGE_YEARS else None


def facts_from(prefetch: Mapping[str, Any], patient_id: str | None = None) -> PatientFacts:
    """Sort prefetch results into facts by resource type, whatever key brought them; the body weights are read from
    their own key (WEIGHT_REQUIREMENT), since weights and lab results are both Observations.

    Each fact holds the records its status rules admit and the service can read; a record it would admit but cannot
    read (readable.py) is left out of every fact and kept, with the reason, in `unreadable`. A record about another
    patient than `patient_id` (subject.py) is no fact at all: it is dropped before anything reads it. Each record is
    read once (its status, whether it can be read), however many facts it goes into: a long record is read in one pass."""
    by_type: dict[str, list[dict]] = {}
    for key, value in prefetch.items():
        if key != WEIGHT_REQUIREMENT:
            for resource in _resources(value, patient_id):
                by_type.setdefault(resource["resourceType"], []).append(resource)
    left_out: dict[int, tuple[dict, str]] = {}
    faults: dict[int, str | None] = {}  # by identity: every record lives as long as the call

    def fault_of(record: dict) -> str | None:
        if id(record) not in faults:
            faults[id(record)] = unreadable(record)
        return faults[id(record)]

    def readable(records: Iterable[dict]) -> list[dict]:
        kept = []
        for record in records:
            fault = fault_of(record)
            if fault is None:
                kept.append(record)
            else:
                left_out.setdefault(id(record), (record, fault))
        return kept

    # each diagnosis as (the record, or its copy without dates, whether that is current, its verification status)
    conditions = [(c, _is_current(c), _verification(c))
                  for c in (_dated_or_not(record, fault_of(record), left_out) for record in by_type.get("Condition", []))]
    diagnoses = [(c, current) for c, current, verification in conditions if verification not in _NOT_A_DIAGNOSIS]
    medication_requests = by_type.get("MedicationRequest", [])
    procedures = by_type.get("Procedure", [])
    weights = newest_first(r for r in _resources(prefetch.get(WEIGHT_REQUIREMENT), patient_id)
                           if r["resourceType"] == "Observation" and r.get("status") not in _NOT_RECORDED)
    patients = by_type.get("Patient", [])
    return PatientFacts(
        patient=patients[0] if patients else None,
        conditions=readable(c for c, current in diagnoses if current),
        condition_history=readable(c for c, _ in diagnoses),
        unconfirmed_conditions=readable(c for c, current, verification in conditions if current and verification in _UNCONFIRMED),
        weight_records=weights,
        observations=readable(newest_first(filter(_is_result, by_type.get("Observation", [])))),
        medications=readable(m for m in medication_requests if m.get("status") in ("active", "on-hold")),
        medication_history=readable(m for m in medication_requests if m.get("status") not in ("entered-in-error", "cancelled", "draft")),
        administrations=readable(a for a in by_type.get("MedicationAdministration", []) if a.get("status") in ("completed", "in-progress")),
        procedures=readable(p for p in procedures if p.get("status") in ("completed", "in-progress")),
        planned_procedures=readable([r for r in by_type.get("ServiceRequest", [])
                                     if r.get("status") in ("active", "on-hold", "draft") and r.get("doNotPerform") is not True]
                                    + [p for p in procedures if p.get("status") == "preparation"]),
        unreadable=list(left_out.values()),
    )


def _dated_or_not(condition: dict, fault: str | None, left_out: dict[int, tuple[dict, str]]) -> dict:
    """The Condition, or, when one of its dates cannot be read (`fault`), a copy without its dates (named in `left_out`)."""
    if fault is None:
        return condition
    readable = without_times(condition)
    left_out[id(readable)] = (condition, f"{fault}; the diagnosis counts without its dates")
    return readable


def newest_first(records: Iterable[dict]) -> list[dict]:
    """Records by when they happened, newest first, as instants (a record from Los Angeles at 23:30 is after one from
    London at 05:00 the next day); a record with no date we can read comes last."""
    return sorted(records, key=lambda r: instant(recorded_at(r)) or _UNDATED, reverse=True)


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
    route_not_licensed: bool,
    kind: Callable[[dict], OrderKind],
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
    earlier = [(m, kind(m)) for m in facts.medication_history + facts.administrations if m.get("status") != "stopped"]
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
        "ivigCourses": newest_first(m for m, k in earlier if k is OrderKind.IVIG),
        "routeUnsettledCourses": newest_first(m for m, k in earlier if k is OrderKind.ROUTE_DECIDES),
        "procedures": coded(facts.procedures),
        "plannedProcedures": coded(facts.planned_procedures + drafted_procedures),
        "unconfirmedGuidelineDiagnoses": [c for c in coded(facts.unconfirmed_conditions)
                                          if index.valuesets(c.get("code")) & indications],
        "unreadableRecords": [_labelled(r, why) for r, why in facts.unreadable
                              if index.is_known(r.get("code") or fhir_element(r, "medication"))],
        "order": orders[0] if orders else [],
        "orderDays": draft.days if draft is not None and draft.days is not None else [],
        "orderDosePerKgPerDay": per_kg if per_kg is not None else [],
        "draftDosesPerKgPerDay": course.daily_doses_per_kg(facts.weight),
        "courseTotalPerKg": total if total is not None else [],
        "courseLeastPerKgAnyWeight": least if (least := course.least_per_kg(facts.weight)) is not None else [],
        "courseReadable": course.readable,
        "highestCourseTotalPerKg": highest_total_per_kg if highest_total_per_kg is not None else [],
        "doseTolerance": dose_tolerance,
        "routeUndetermined": route_undetermined,
        "routeNotLicensed": route_not_licensed,
    }


def _labelled(record: dict, why: str) -> dict:
    """A copy of an unreadable record whose name says why it was left out: the card lists it as a fact line, and the
    clinician needs the fault to find it in the chart."""
    element = next((k for k in ("medicationCodeableConcept", "medicationReference") if k in record), "code")
    concept = dict(record.get(element) or {}) if isinstance(record.get(element), dict) else {}
    codings = concept.get("coding") if isinstance(concept.get("coding"), list) else []
    first = codings[0] if codings and isinstance(codings[0], dict) else {}
    name = text(concept.get("text")) or text(first.get("display")) or text(concept.get("display")) or text(first.get("code")) or "unnamed"
    named_by = "display" if element == "medicationReference" else "text"  # a Reference is named by its display
    return {**record, element: {**concept, named_by: f"{name}, left out: {why}"}}


def _resources(value: Any, patient_id: str | None) -> list[dict]:
    """The resources in a searchset Bundle (or a single resource); OperationOutcomes and records about another patient
    than `patient_id` are dropped."""
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return []
    if value["resourceType"] != "Bundle":
        return [] if value["resourceType"] == "OperationOutcome" or about_another_patient(value, patient_id) else [value]
    entries: list = value["entry"] if isinstance(value.get("entry"), list) else []
    return [
        e["resource"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("resource"), dict) and isinstance(e["resource"].get("resourceType"), str)
        and e["resource"]["resourceType"] != "OperationOutcome" and not about_another_patient(e["resource"], patient_id)
    ]


def _verification(condition: dict) -> str | None:
    return code_of(condition, "verificationStatus")


def _is_current(condition: dict) -> bool:
    """Clinically current: active, recurrence, relapse or remission; or, with no clinicalStatus, an encounter diagnosis (or a
    diagnosis with no category) that does not say it has abated."""
    if condition.get("clinicalStatus") is not None:
        return code_of(condition, "clinicalStatus") in _ACTIVE
    categories = {text(c.get("code")) for concept in objects(condition.get("category")) for c in objects(concept.get("coding"))}
    if categories - {_ENCOUNTER_DIAGNOSIS} or (condition.get("category") is not None and not categories):
        return False
    abated = any(condition.get(element) is not None for element in _ABATEMENT) or condition.get("abatementBoolean") is True
    return not abated


def _is_result(observation: dict) -> bool:
    return text(observation.get("status")) in RESULT_STATUSES


def _last_possible_day(value: Any, today: date) -> date | None:
    """The last day a FHIR date known only to the year or the month can be (not after today); None otherwise."""
    match = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", value) if isinstance(value, str) else None
    if match is None or not 1 <= int(match[2] or 12) <= 12:
        return None
    year, month = int(match[1]), int(match[2] or 12)
    last = date(year, month, calendar.monthrange(year, month)[1])
    return min(last, today) if date(year, month, 1) <= today else last


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
