"""How the patient's record is read as EHRs send it: which Observation is the dosing weight and in what unit, and what
happens to a record the service cannot read (it is left out and named; the answer is never blocked by it)."""

from __future__ import annotations

import pytest

from cds_service.fhirjson import instant
from cds_service.readable import unreadable
from tests.fhir_data import (
    SNOMED,
    condition,
    days_ago,
    earlier_ivig_course,
    gbs,
    hook_request,
    ivig_order,
    observation,
    patient,
    prefetch,
    procedure,
    suggested_courses,
    weight,
)

UNREADABLE = "SAFE-record-unreadable"


def _ucum_free(resource: dict, unit: str) -> dict:
    """The Observation with its unit written only as text, no UCUM system or code (as many EHRs send it)."""
    resource["valueQuantity"] = {"value": resource["valueQuantity"]["value"], "unit": unit}
    return resource


# --- whose record it is -------------------------------------------------------------------------------------------

ANOTHER = "Patient/other-99"


def _of(resource: dict, subject: str = ANOTHER) -> dict:
    resource["subject"] = {"reference": subject}
    return resource


@pytest.mark.parametrize("subject", [ANOTHER, "https://ehr.example/fhir/Patient/other-99/_history/2"], ids=["relative", "absolute"])
def test_another_patients_weight_never_sets_the_dose(cards_by_topic, subject):
    # the newest weight in the bundle is another patient's (120 kg): the dose is this patient's 70 kg
    cards = cards_by_topic(conditions=[gbs(onset=days_ago(3))],
                           weights=[_of(weight(120, when=days_ago(0)), subject), weight(70, when=days_ago(5))])
    assert suggested_courses(cards["GBS-1"]) == [(28, 5)]
    alone = cards_by_topic(conditions=[gbs(onset=days_ago(3))], weights=[_of(weight(120, when=days_ago(0)), subject)])
    assert "SAFE-weight" in alone and suggested_courses(alone["GBS-1"]) == []


def test_another_patients_records_are_no_facts_about_this_one(cards_by_topic):
    others = {"conditions": [gbs(onset=days_ago(3)), _of(condition("G61.81", display="CIDP"))],
              "medications": [_of(earlier_ivig_course(days_before=2))],
              "labs": [_of(observation("98979-8", 20, "mL/min/{1.73_m2}", low=60, when=days_ago(1)))],
              "patient_resource": {"resourceType": "Patient", "id": "other-99", "birthDate": "2018-01-01"}}
    cards = cards_by_topic(**others)
    assert {"GBS-1", "GBS-2"} <= set(cards)
    assert not {"CIDP-severity", "SAFE-2-renal", "SAFE-recent-course", "GBS-5"} & set(cards)
    same = cards_by_topic(**{**others, "medications": [_of(earlier_ivig_course(days_before=2), "Patient/pat-1")]})
    assert "SAFE-recent-course" in same  # this patient's own course, referenced the same way, still counts


def test_a_draft_order_for_another_patient_gets_no_cards(cds):
    """The context's patient is whose record is read: an order whose subject is someone else is not advised on with it."""
    order = _of(ivig_order(daily_g=280, days=5))
    body = hook_request([order], hook="order-sign", prefetch=prefetch(conditions=[gbs()], weights=[weight(70)]))
    assert cds(body) == []
    order["subject"] = {"reference": "Patient/pat-1"}
    assert cds(body)  # the same order for this patient: the 10-fold course is seen


# --- which Observation is the dosing weight -------------------------------------------------------------------


def test_the_latest_weight_is_the_latest_in_time_not_in_text(cards_by_topic):
    # 23:30 in Los Angeles on day 1 is 07:30 UTC on day 2: after 05:00 UTC on day 2, though it sorts first as text
    earlier, later = weight(80, when=days_ago(1) + "T05:00:00+00:00"), weight(70, when=days_ago(2) + "T23:30:00-08:00")
    cards = cards_by_topic(conditions=[gbs(onset=days_ago(3))], weights=[earlier, later])
    assert suggested_courses(cards["GBS-1"]) == [(28, 5)]


def test_a_height_in_the_weight_bundle_is_not_a_weight(cards_by_topic):
    height = observation("8302-2", 175, "cm", when=days_ago(0), display="Body height")
    cards = cards_by_topic(conditions=[gbs(onset=days_ago(3))], weights=[weight(70, when=days_ago(1)), height])
    assert "SAFE-weight" not in cards and suggested_courses(cards["GBS-1"]) == [(28, 5)]


def test_a_date_only_weight_is_that_day():
    assert instant("2026-03-02") < instant("2026-03-02T00:30:00-01:00") < instant("2026-03-03")


@pytest.mark.parametrize("recorded, daily_g", [
    (weight(70000, "g"), 28),
    (weight(2464, "[oz_av]"), 27.9),
    (_ucum_free(weight(154), "lbs"), 27.9),
    (_ucum_free(weight(154), "LB"), 27.9),
    (_ucum_free(weight(70), "Kg"), 28),
], ids=["grams", "ounces", "lbs-as-text", "LB-as-text", "Kg-as-text"])
def test_a_weight_in_any_unit_of_mass_sets_the_dose(cards_by_topic, recorded, daily_g):
    cards = cards_by_topic(conditions=[gbs(onset=days_ago(3))], weights=[recorded])
    assert "SAFE-weight" not in cards
    assert suggested_courses(cards["GBS-1"]) == [(daily_g, 5)]


def test_a_neonate_weighed_in_grams_gets_a_dose(cards_by_topic):
    neonate = patient(days_ago(10))
    cards = cards_by_topic(conditions=[condition("P94.0", display="Transient neonatal myasthenia gravis")],
                           weights=[weight(3200, "g")], patient_resource=neonate)
    assert "MG-4" in cards and "SAFE-weight" not in cards


def test_the_plausible_weight_rule_holds_in_grams(cards_by_topic):
    card = cards_by_topic(conditions=[gbs(onset=days_ago(3))], weights=[weight(70, "g")])["SAFE-weight"]
    assert "70 g" in card["detail"] and "plausible range" in card["detail"]


@pytest.mark.parametrize("quantity, said", [
    ({"value": 154, "unit": "lb", "system": "http://unitsofmeasure.org", "code": "kg"}, "(kg, written as lb)"),
    ({"value": 150, "comparator": ">", "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
     "is a bound (&gt; 150 kg), not a measured value"),
], ids=["code-kg-word-lb", "above-the-scale"])
def test_a_weight_whose_unit_contradicts_itself_or_that_is_a_bound_sets_no_dose(cards_by_topic, quantity, said):
    """154 coded kg but written lb is 70 kg or 154 kg: a 2.2-fold dose either way, so neither is taken (the code
    was, silently). "> 150 kg" is a scale's limit, not a weight: dosing by it underdoses by an unknown amount."""
    recorded = weight(70, when=days_ago(0))
    recorded["valueQuantity"] = quantity
    cards = cards_by_topic(conditions=[gbs(onset=days_ago(3))], weights=[recorded, weight(70, when=days_ago(9))])
    assert said in cards["SAFE-weight"]["detail"] and suggested_courses(cards["GBS-1"]) == []


def _status(resource: dict, status: str) -> dict:
    resource["status"] = status
    return resource


def test_only_a_final_weight_sets_the_dose_and_a_preliminary_one_is_named_not_called_missing(cards_by_topic):
    """A preliminary weight is not a result to dose by, but it is on record: "no body weight is on record" was false."""
    alone = cards_by_topic(conditions=[gbs(onset=days_ago(3))], weights=[_status(weight(70, when=days_ago(0)), "preliminary")])
    assert "is preliminary, not a final result: confirm it in the chart" in alone["SAFE-weight"]["detail"]
    assert "No body weight is on record" not in alone["SAFE-weight"]["detail"]
    for status, newest in (("preliminary", 100), ("entered-in-error", 7), ("cancelled", 7)):
        cards = cards_by_topic(conditions=[gbs(onset=days_ago(3))],
                               weights=[_status(weight(newest, when=days_ago(0)), status), weight(70, when=days_ago(5))])
        assert suggested_courses(cards["GBS-1"]) == [(28, 5)], status


def test_a_weight_written_as_text_is_not_read_as_a_number(cards_by_topic):
    recorded = weight(70)
    recorded["valueQuantity"]["value"] = "70"  # FHIR JSON writes numbers as numbers; the record is not read
    card = cards_by_topic(conditions=[gbs(onset=days_ago(3))], weights=[recorded])["SAFE-weight"]
    assert "cannot be read: the value '70' is not a number" in card["detail"]


# --- records the service cannot read ----------------------------------------------------------------------------


def _lab(code: str, value, unit: str, **fields) -> dict:
    resource = observation(code, 1, unit, when=days_ago(1))
    resource["valueQuantity"]["value"] = value
    return resource | fields


def _course_authored(on: str) -> dict:
    return earlier_ivig_course() | {"authoredOn": on}


def _exchange_on(day: str) -> dict:
    return procedure("20720000", performed=day)


@pytest.mark.parametrize("record, fault", [
    (_lab("718-7", "13.5", "g/dL"), "the value '13.5' is not a number"),
    (_lab("98979-8", True, "mL/min/{1.73_m2}"), "the value true is not a number"),
    (_lab("718-7", 13.5, "g/dL", referenceRange=[{"low": {"value": 12}, "high": {"value": "16"}}]),
     "the reference range's high limit '16' is not a number"),
    (_course_authored("2026-13-01"), "authoredOn '2026-13-01' is not a date"),
    (_exchange_on("2026-02-30"), "performedDateTime '2026-02-30' is not a date"),
], ids=["lab-value-text", "egfr-true", "range-text", "course-month-13", "exchange-30-february"])
def test_an_unreadable_record_is_left_out_and_named_and_the_overdose_card_stays(cards_by_topic, record, fault):
    pools = {"Observation": "labs", "MedicationRequest": "medications", "Procedure": "procedures"}
    cards = cards_by_topic(hook="order-sign", order=ivig_order(daily_g=280, days=5),
                           conditions=[gbs(onset=days_ago(3))], **{pools[record["resourceType"]]: [record]})
    assert cards["GBS-1"]["indicator"] == "critical"  # a 10-fold course, found despite the bad record
    left_out = cards[UNREADABLE]
    assert left_out["indicator"] == "warning" and left_out["overrideReasons"]
    assert f"left out: {fault}" in left_out["detail"]


def test_an_unreadable_order_by_medication_reference_is_named_by_its_display(cards_by_topic):
    order = {"resourceType": "MedicationRequest", "id": "erx-1", "status": "active", "intent": "order",
             "medicationReference": {"reference": "Medication/erx-9", "display": "PREDNISONE 5 MG PO TABS"},
             "authoredOn": "2026-13-01"}
    cards = cards_by_topic(hook="order-sign", order=ivig_order(daily_g=280, days=5), conditions=[gbs(onset=days_ago(3))],
                           medications=[order])
    assert "PREDNISONE 5 MG PO TABS, left out: authoredOn '2026-13-01' is not a date" in cards[UNREADABLE]["detail"]


def test_a_diagnosis_with_an_unreadable_onset_still_counts_and_is_named(cards_by_topic):
    cards = cards_by_topic(conditions=[gbs(onset="2026-02-30")])
    assert "GBS-1" in cards and "SAFE-stewardship" not in cards
    assert "onsetDateTime '2026-02-30' is not a date; the diagnosis counts without its dates" in cards[UNREADABLE]["detail"]


def test_an_unreadable_record_nothing_reads_is_not_mentioned(cards_by_topic):
    sodium = _lab("2951-2", "140", "mmol/L")  # no ValueSet of the knowledge holds sodium: it can never matter
    assert UNREADABLE not in cards_by_topic(conditions=[gbs(onset=days_ago(3))], labs=[sodium])


@pytest.mark.parametrize("resource, fault", [
    ({"resourceType": "Observation", "effectiveDateTime": "2026-02-29"}, "effectiveDateTime '2026-02-29' is not a date"),
    ({"resourceType": "Observation", "effectiveDateTime": 20260101}, "effectiveDateTime 20260101 is not a date"),
    ({"resourceType": "Observation", "effectivePeriod": {"start": "yesterday"}}, "effectivePeriod.start 'yesterday' is not a date"),
    ({"resourceType": "Condition", "onsetDateTime": "2024-02-29", "recordedDate": "2025-04-31"}, "recordedDate '2025-04-31' is not a date"),
    ({"resourceType": "Observation", "valueQuantity": "70 kg"}, "valueQuantity is not a quantity"),
    ({"resourceType": "Procedure", "code": {"coding": [{"system": SNOMED, "code": "x"}]}, "performedDateTime": "2024-02-29T10:00:00+01:00"},
     None),
])
def test_what_makes_a_record_unreadable(resource, fault):
    assert unreadable(resource) == fault
