"""Myasthenia gravis (rows MG-1..5), through the HTTP API."""

from __future__ import annotations

import re

import pytest

from tests.card_checks import assert_follows_the_regimen, assert_states, assert_warning_without_suggestions
from tests.fhir_data import (
    SNOMED, administration, condition, corticosteroid, days_ago, earlier_ivig_course, ivig_order, patient,
    service_request, suggested_courses,
)

CHAPTER = ("MG-1", "MG-2", "MG-3", "MG-4", "MG-5")
THYMECTOMY = "43450002"
PREGNANT = condition("Z33.1", display="Pregnant state, incidental")
THYMOMA = condition("D15.0", display="Benign neoplasm of thymus")
NEONATAL_MG = condition("P94.0", display="Transient neonatal myasthenia gravis")
BOTH_COURSES_FOR_70_KG = [(70, 1), (70, 2)]  # 1 g/kg on one day; 1 g/kg/day for 2 days (2 g/kg)


def mg(**kwargs) -> dict:
    return condition("G70.01", display="Myasthenia gravis with (acute) exacerbation", **kwargs)


def mg_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [mg()], **data})


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
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
    ("MG-5", {"medications": [earlier_ivig_course(30)]}, "warning", "No recommendation",
     "There is not sufficient evidence to recommend IVIG for chronic maintenance therapy in MG alone or in "
     "combination with other immunoactive drugs."),
])
def test_each_recommendation_fires_with_its_indicator_level_and_sentence(cards_by_topic, hook, topic, data, indicator, level, sentence):
    card = mg_cards(cards_by_topic, hook=hook, **data)[topic]
    assert_states(card, indicator=indicator, level=level, sentence=sentence)


# --- MG-1: 2 g/kg over 2 days, or 1 g/kg on a single day ------------------------------------------------


@pytest.mark.parametrize("code, system", [
    ("G70.00", "http://hl7.org/fhir/sid/icd-10-cm"), ("G70.01", "http://hl7.org/fhir/sid/icd-10-cm"),
    ("91637004", SNOMED), ("80976008", SNOMED),  # myasthenic crisis
])
def test_with_70_kg_both_courses_are_offered_as_alternatives(cards_by_topic, code, system):
    card = mg_cards(cards_by_topic, conditions=[condition(code, system)])["MG-1"]
    assert card["indicator"] == "info"
    assert card["selectionBehavior"] == "at-most-one"
    assert sorted(suggested_courses(card)) == BOTH_COURSES_FOR_70_KG
    assert all(s["actions"][0]["type"] == "update" for s in card["suggestions"])


@pytest.mark.parametrize("daily_g, days", [(70, 2), (70, 1)])
def test_a_draft_of_either_course_follows_the_regimen(cards_by_topic, daily_g, days):
    card = mg_cards(cards_by_topic, order=ivig_order(daily_g=daily_g, days=days), hook="order-sign")["MG-1"]
    assert_follows_the_regimen(card)


def test_a_draft_of_35_g_for_5_days_departs_and_is_a_warning(cards_by_topic):
    card = mg_cards(cards_by_topic, order=ivig_order(daily_g=35, days=5), hook="order-sign")["MG-1"]
    assert card["indicator"] == "warning" and card["overrideReasons"]
    assert card["summary"].startswith("IVIG draft: 25 % above the guideline's course total, 3 days longer") and len(card["summary"]) < 140
    assert "The draft order gives 0.5 g/kg/day (35 g/day) for 5 days" in card["detail"]
    assert sorted(suggested_courses(card)) == BOTH_COURSES_FOR_70_KG


def test_the_single_day_course_is_written_in_the_singular(cards_by_topic):
    card = mg_cards(cards_by_topic, order=ivig_order(daily_g=35, days=5), hook="order-sign")["MG-1"]
    texts = [card["summary"], card["detail"], *(s["label"] for s in card["suggestions"])]
    assert not [text for text in texts if re.search(r"\b1 days\b", text)], texts


# --- MG-2: children and pregnancy -----------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    {"patient_resource": patient(birth_date=days_ago(10 * 365))},  # a child
    {"conditions": [mg(), PREGNANT]},
], ids=["child", "pregnant"])
def test_a_child_or_a_pregnancy_gets_the_safety_statement(cards_by_topic, data):
    assert "MG-2" in mg_cards(cards_by_topic, **data)


def test_an_adult_without_pregnancy_gets_no_safety_statement(cards_by_topic):
    assert "MG-2" not in mg_cards(cards_by_topic, patient_resource=patient(birth_date=days_ago(50 * 366)))


# --- MG-3: before thymectomy, or with a thymoma ---------------------------------------------------------


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
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


# --- MG-5: maintenance (an earlier course within 4 months) ----------------------------------------------


@pytest.mark.parametrize("data", [
    {"medications": [earlier_ivig_course(30)]},
    {"medications": [earlier_ivig_course(119)]},  # 119 days is within 4 months on any date
    {"administrations": [administration(when=days_ago(60))]},
], ids=["30-days", "119-days", "administration"])
def test_a_course_within_4_months_is_maintenance_and_a_warning_without_suggestions(cards_by_topic, data):
    assert_warning_without_suggestions(mg_cards(cards_by_topic, **data)["MG-5"], stating="No recommendation")


@pytest.mark.parametrize("medications", [
    [],
    [earlier_ivig_course(124)],  # 124 days is over 4 months on any date
    [earlier_ivig_course(300)],
    [earlier_ivig_course(30, status="cancelled")],
], ids=["none", "124-days", "300-days", "cancelled"])
def test_no_recent_course_no_maintenance_warning(cards_by_topic, medications):
    assert "MG-5" not in mg_cards(cards_by_topic, medications=medications)


# --- the card shows the patient fact that made it fire (card contract: "the patient facts used") --------


CHILD_BORN = days_ago(10 * 365)


@pytest.mark.parametrize("topic, data, shown", [
    ("MG-2", {"patient_resource": patient(birth_date=CHILD_BORN)}, CHILD_BORN),
    ("MG-3", {"service_requests": [service_request(THYMECTOMY)]}, THYMECTOMY),
    ("MG-3", {"others": [service_request(THYMECTOMY, status="draft", id="sr-1")]}, THYMECTOMY),
    ("MG-5", {"medications": [earlier_ivig_course(30)]}, days_ago(30)),
], ids=["MG-2-birth-date", "MG-3-thymectomy-on-record", "MG-3-thymectomy-drafted", "MG-5-earlier-course"])
def test_the_card_names_the_fact_it_rests_on(cards_by_topic, topic, data, shown):
    detail = mg_cards(cards_by_topic, hook="order-sign", **data)[topic]["detail"]
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
