"""Myasthenia gravis (rows MG-1..5), through the HTTP API."""

from __future__ import annotations

import pytest

from tests.card_checks import assert_offers_no_dose, assert_states
from tests.fhir_data import (
    SNOMED,
    condition,
    corticosteroid,
    days_ago,
    earlier_ivig_course,
    ivig_order,
    patient,
    service_request,
)

CHAPTER = ("MG-1", "MG-2", "MG-3", "MG-4", "MG-5")
THYMECTOMY = "43450002"
PREGNANT = condition("Z33.1", display="Pregnant state, incidental")
THYMOMA = condition("D15.0", display="Benign neoplasm of thymus")
NEONATAL_MG = condition("P94.0", display="Transient neonatal myasthenia gravis")


def mg(**kwargs) -> dict:
    return condition("G70.01", display="Myasthenia gravis with (acute) exacerbation", **kwargs)


def mg_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [mg()], **data})


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("topic, data, indicator, level, sentence", [
    ("MG-1", {}, "info", "Level A",
     "Intravenous immunoglobulin is an effective treatment for acute exacerbations of MG and for short-term "
     "treatment of severe MG (level A)."),
    ("MG-2", {"patient_resource": patient(birth_date=days_ago(10 * 365))}, "info", "Guideline statement (no level)",
     "This treatment is safe also for children, during pregnancy and for elderly patients with complicating disorders."),
    ("MG-3", {"service_requests": [service_request(THYMECTOMY)]}, "info", "Good practice point",
     "Intravenous immunoglobulin is often used to prepare MG patients for thymectomy or other types of surgery. "
     "This is especially recommended for those with severe weakness, bulbar symptoms, poor pulmonary function or a "
     "thymoma. There are no controlled studies for this practice. However, the well-documented short-term effect of "
     "IVIG in acute exacerbations is useful in the post-operative situation (good practice point)."),
    ("MG-4", {"conditions": [mg(), PREGNANT]}, "info", "Good practice point",
     "IVIG is widely recommended for severe MG or MG exacerbations during pregnancy and also before giving birth. "
     "This is partly due to its effect on muscle strength, partly to its safety profile. Similarly IVIG has been "
     "recommended for neonatal MG [113] (good practice point)."),
    ("MG-5", {"conditions": [condition("G70.00")]}, "info", "No recommendation",
     "There is not sufficient evidence to recommend IVIG for chronic maintenance therapy in MG alone or in "
     "combination with other immunoactive drugs."),
])
def test_each_recommendation_fires_with_its_indicator_level_and_sentence(cards_by_topic, hook, topic, data, indicator, level, sentence):
    card = mg_cards(cards_by_topic, hook=hook, **data)[topic]
    assert_states(card, indicator=indicator, level=level, sentence=sentence)


# --- MG-1: acute exacerbation or severe MG; the guideline recommends no dose ------------------------------


@pytest.mark.parametrize("code, system", [("G70.01", "http://hl7.org/fhir/sid/icd-10-cm"), ("80976008", SNOMED)],
                         ids=["exacerbation", "myasthenic-crisis"])
def test_an_exacerbation_gets_the_level_a_card_without_a_dose(cards_by_topic, code, system):
    """The guideline reports the doses studied (2 g/kg mostly; 1 g/kg not inferior) but recommends none: no dose,
    no suggestion, and no draft is called a departure."""
    cards = mg_cards(cards_by_topic, conditions=[condition(code, system)], order=ivig_order(daily_g=28, days=5))
    card = cards["MG-1"]
    assert card["source"]["topic"]["code"] == "MG-1" and card["indicator"] == "info"
    assert_offers_no_dose(card)
    assert "recommends no dose" in card["detail"] and "departs" not in card["detail"]
    assert "MG-5" not in [c["source"]["topic"]["code"] for c in cards.values()]


@pytest.mark.parametrize("code, system", [
    ("G70.00", "http://hl7.org/fhir/sid/icd-10-cm"),  # without (acute) exacerbation
    ("G70.0", "http://hl7.org/fhir/sid/icd-10"),      # WHO ICD-10: does not say
    ("91637004", SNOMED),                             # myasthenia gravis: does not say
], ids=["without-exacerbation", "who-icd-10", "snomed"])
def test_without_a_coded_exacerbation_one_card_states_both_and_what_decides(cards_by_topic, code, system):
    cards = mg_cards(cards_by_topic, conditions=[condition(code, system)])
    card = cards["MG-1"]
    assert card is cards["MG-5"] and card["source"]["topic"]["code"] == "MG-purpose"
    assert card["indicator"] == "info" and "severity and the purpose of the order decide" in card["detail"]
    assert "Level A" in card["detail"] and "No recommendation" in card["detail"]
    assert_offers_no_dose(card)


def test_a_two_gram_course_over_five_days_is_not_a_departure_at_signing(cards_by_topic):
    """2 g/kg over 5 days is common practice the guideline does not speak against: nothing is wrong to say."""
    cards = mg_cards(cards_by_topic, order=ivig_order(daily_g=28, days=5), hook="order-sign")
    assert not [code for code in cards if code in CHAPTER]


# --- MG-2: children and pregnancy -----------------------------------------------------------------------


def test_a_child_gets_the_safety_statement(cards_by_topic):
    assert "MG-2" in mg_cards(cards_by_topic, patient_resource=patient(birth_date=days_ago(10 * 365)))


@pytest.mark.parametrize("age", [30, 16])
def test_in_pregnancy_the_safety_point_is_made_once_by_mg_4(cards_by_topic, age):
    """MG-4 recommends IVIG in pregnancy partly for its safety profile: a second card saying it is safe would repeat it."""
    cards = mg_cards(cards_by_topic, conditions=[mg(), PREGNANT], patient_resource=patient(birth_date=days_ago(age * 366)))
    assert "MG-4" in cards and "MG-2" not in cards
    assert "safety profile" in cards["MG-4"]["detail"]


def test_an_adult_without_pregnancy_gets_no_safety_statement(cards_by_topic):
    assert "MG-2" not in mg_cards(cards_by_topic, patient_resource=patient(birth_date=days_ago(50 * 366)))


# --- MG-3: before thymectomy, or with a thymoma ---------------------------------------------------------


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("data", [
    {"service_requests": [service_request(THYMECTOMY)]},                              # active request on record
    {"others": [service_request(THYMECTOMY, status="draft", id="sr-1")]},             # drafted in this session
    {"conditions": [mg(), THYMOMA]},
], ids=["thymectomy-on-record", "thymectomy-drafted", "thymoma"])
def test_a_planned_thymectomy_or_a_thymoma_gets_the_preparation_card(cards_by_topic, hook, data):
    assert "MG-3" in mg_cards(cards_by_topic, hook=hook, **data)


@pytest.mark.parametrize("data", [
    {},
    {"service_requests": [service_request(THYMECTOMY, status="completed")]},
    {"service_requests": [service_request(THYMECTOMY, status="revoked")]},
], ids=["nothing-planned", "completed-request", "revoked-request"])
def test_without_a_planned_thymectomy_or_a_thymoma_no_preparation_card(cards_by_topic, data):
    assert "MG-3" not in mg_cards(cards_by_topic, **data)


# --- MG-4: neonatal MG, MG in pregnancy -----------------------------------------------------------------


@pytest.mark.parametrize("conditions", [[NEONATAL_MG], [mg(), PREGNANT]], ids=["neonatal", "pregnant"])
def test_neonatal_mg_or_mg_in_pregnancy_gets_the_recommendation(cards_by_topic, conditions):
    assert "MG-4" in mg_cards(cards_by_topic, conditions=conditions)


def test_mg_without_pregnancy_gets_no_pregnancy_card(cards_by_topic):
    assert "MG-4" not in mg_cards(cards_by_topic)


# --- MG-5: maintenance: not sufficient evidence to recommend (not a recommendation against) --------------


def test_maintenance_is_not_called_a_recommendation_against(cards_by_topic):
    card = mg_cards(cards_by_topic, conditions=[condition("G70.00")], medications=[earlier_ivig_course(30)])["MG-5"]
    assert card["indicator"] == "info" and "against IVIG" not in card["detail"]
    assert "There is not sufficient evidence to recommend IVIG for chronic maintenance therapy" in card["detail"]


# --- the card shows the patient fact that made it fire (card contract: "the patient facts used") --------


CHILD_BORN = days_ago(10 * 365)


@pytest.mark.parametrize("topic, data, shown", [
    ("MG-2", {"patient_resource": patient(birth_date=CHILD_BORN)}, CHILD_BORN),
    ("MG-3", {"service_requests": [service_request(THYMECTOMY)]}, THYMECTOMY),
    ("MG-3", {"others": [service_request(THYMECTOMY, status="draft", id="sr-1")]}, THYMECTOMY),
], ids=["MG-2-birth-date", "MG-3-thymectomy-on-record", "MG-3-thymectomy-drafted"])
def test_the_card_names_the_fact_it_rests_on(cards_by_topic, topic, data, shown):
    detail = mg_cards(cards_by_topic, **data)[topic]["detail"]
    assert shown in detail, detail


# --- not an indication ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(verification="refuted")])
def test_a_resolved_or_refuted_diagnosis_is_not_an_indication(cards_by_topic, status):
    cards = mg_cards(
        cards_by_topic,
        conditions=[mg(**status), condition("P94.0", **status), PREGNANT, THYMOMA],
        patient_resource=patient(birth_date=days_ago(10 * 365)),
        medications=[earlier_ivig_course(30)],
        service_requests=[service_request(THYMECTOMY)],
    )
    assert not [code for code in cards if code in CHAPTER]


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    assert mg_cards(cards_by_topic, order=corticosteroid() | {"status": "draft", "id": "pred-1"}) == {}
