"""Chronic inflammatory demyelinating polyradiculoneuropathy (rows CIDP-1..4), through the HTTP API."""

from __future__ import annotations

import pytest

from tests.conftest import topics
from tests.fhir_data import SNOMED, condition, days_ago, hook_request, ivig_order, medication_request, prefetch, weight

CIDP_CODES = [("G61.81", "http://hl7.org/fhir/sid/icd-10-cm"), ("128209004", SNOMED)]
CHAPTER = ("CIDP-1", "CIDP-2", "CIDP-3", "CIDP-4")


def cidp(**kwargs) -> dict:
    return condition("G61.81", display="Chronic inflammatory demyelinating polyneuritis", **kwargs)


def earlier_course(status: str = "completed") -> dict:
    return medication_request("J06BA02", status=status, authored=days_ago(21))


def prednisone(status: str = "active") -> dict:
    return medication_request("H02AB07", display="prednisone", status=status)


def cidp_cards(cds, *, order=None, hook="order-select", others=(), **data) -> dict[str, dict]:
    data.setdefault("conditions", [cidp()])
    data.setdefault("weights", [weight(70, when=days_ago(1))])
    body = hook_request([order or ivig_order(), *others], hook=hook, prefetch=prefetch(**data))
    return topics(cds(body))


def suggested(card: dict) -> list[tuple[float, int]]:
    """(daily grams, days) of each suggestion."""
    out = []
    for s in card.get("suggestions", []):
        dosage = s["actions"][0]["resource"]["dosageInstruction"][0]
        out.append((dosage["doseAndRate"][0]["doseQuantity"]["value"], dosage["timing"]["repeat"]["boundsDuration"]["value"]))
    return out


FIRST_COURSE = {}
ON_PREDNISONE = {"medications": [prednisone()]}
AFTER_A_COURSE = {"medications": [earlier_course()]}


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("topic, data, level, sentence", [
    ("CIDP-1", FIRST_COURSE, "Good practice point",
     "Patients with very mild symptoms which do not or only slightly interfere with activities of daily living "
     "may be monitored without treatment (good practice point)."),
    ("CIDP-2", FIRST_COURSE, "Level A",
     "IVIG (2 g/kg in 2–5 days) (level A) or corticosteroids (1 mg/kg or 60 mg daily) (level B) can be used as "
     "first-line treatment in sensorimotor CIDP."),
    ("CIDP-3", ON_PREDNISONE, "Good practice point",
     "For pure motor CIDP IVIG treatment should be first choice and if corticosteroids are used, patients should "
     "be monitored closely for deterioration (good practice point)."),
    ("CIDP-4", AFTER_A_COURSE, "Good practice point",
     "If a patient responds to IVIG, attempts should be made at intervals to reduce the dose to discover whether "
     "the patient still needs IVIG and what dose is needed (good practice point)."),
])
def test_each_recommendation_fires_as_info_with_its_level_and_sentence(cds, hook, topic, data, level, sentence):
    card = cidp_cards(cds, hook=hook, **data)[topic]
    assert card["indicator"] == "info"
    assert level in card["detail"]
    assert sentence in card["detail"]
    assert card["source"]["topic"]["code"] == topic and len(card["summary"]) < 140


@pytest.mark.parametrize("code, system", CIDP_CODES)
def test_a_first_course_gets_the_mild_disease_note_and_the_level_a_regimen(cds, code, system):
    cards = cidp_cards(cds, conditions=[condition(code, system)])
    assert {"CIDP-1", "CIDP-2"} <= set(cards)
    assert "CIDP-3" not in cards and "CIDP-4" not in cards


@pytest.mark.parametrize("status", ["completed", "active", "on-hold"])
def test_an_earlier_ivig_order_on_record_means_maintenance_not_first_line(cds, status):
    cards = cidp_cards(cds, medications=[earlier_course(status)])
    assert "CIDP-4" in cards
    assert "CIDP-1" not in cards and "CIDP-2" not in cards


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error", "stopped"])
def test_an_ivig_order_that_was_not_given_is_not_an_earlier_course(cds, status):
    cards = cidp_cards(cds, medications=[earlier_course(status)])
    assert {"CIDP-1", "CIDP-2"} <= set(cards) and "CIDP-4" not in cards


def test_a_corticosteroid_drafted_in_the_same_session_brings_the_pure_motor_warning(cds):
    cards = cidp_cards(cds, hook="order-sign", others=[medication_request("H02AB07", status="draft", id="pred-1")])
    assert "CIDP-3" in cards
    assert "prednisone" in cards["CIDP-3"]["detail"] or "H02AB07" in cards["CIDP-3"]["detail"]


@pytest.mark.parametrize("medications", [
    [],                                                  # no corticosteroid
    [prednisone(status="completed")],                    # a past corticosteroid course
    [prednisone(status="stopped")],                      # a stopped corticosteroid
])
def test_no_active_corticosteroid_no_pure_motor_card(cds, medications):
    assert "CIDP-3" not in cidp_cards(cds, medications=medications)


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(clinical="inactive"), dict(verification="refuted"),
                                    dict(verification="entered-in-error"), dict(verification="unconfirmed")])
def test_a_cidp_that_is_not_a_current_diagnosis_gives_no_cidp_card(cds, status):
    cards = cidp_cards(cds, conditions=[cidp(**status)], medications=[prednisone()])
    assert not [code for code in cards if code in CHAPTER]
    assert "SAFE-1" in cards  # the order is still an IVIG order


def test_an_order_that_is_not_ivig_gets_no_card(cds):
    body = hook_request([prednisone() | {"status": "draft", "id": "pred-1"}],
                        prefetch=prefetch(conditions=[cidp()], weights=[weight(70)]))
    assert cds(body) == []


# --- CIDP-2 regimen: 2 g/kg in 2-5 days --------------------------------------------------------------


def test_with_70_kg_the_two_ends_of_the_range_are_offered_as_alternatives(cds):
    card = cidp_cards(cds)["CIDP-2"]
    assert card["indicator"] == "info"
    assert card["selectionBehavior"] == "at-most-one"
    assert suggested(card) == [(70, 2), (28, 5)]  # 1 g/kg/day x 2 days, 0.4 g/kg/day x 5 days
    assert all(s["uuid"] and s["actions"][0]["type"] == "update" for s in card["suggestions"])
    assert "1 g/kg/day × 70 kg = 70 g/day for 2 days, 140 g in total" in card["detail"]
    assert "0.4 g/kg/day × 70 kg = 28 g/day for 5 days, 140 g in total" in card["detail"]


@pytest.mark.parametrize("daily_g, days", [(70, 2), (35, 4), (28, 5)])
def test_a_draft_within_the_range_follows_the_regimen(cds, daily_g, days):
    card = cidp_cards(cds, order=ivig_order(daily_g=daily_g, days=days), hook="order-sign")["CIDP-2"]
    assert card["indicator"] == "info" and "suggestions" not in card
    assert "this follows the guideline's regimen" in card["detail"]


def test_a_draft_of_60_g_for_5_days_departs_and_is_a_warning(cds):
    card = cidp_cards(cds, order=ivig_order(daily_g=60, days=5), hook="order-sign")["CIDP-2"]
    assert card["indicator"] == "warning" and card["overrideReasons"]
    assert "departs" in card["summary"] and len(card["summary"]) < 140
    assert "The draft order gives 0.86 g/kg/day (60 g/day) for 5 days, 4.29 g/kg in total" in card["detail"]
    assert "; the guideline's regimen is " in card["detail"]  # the draft does not follow it
    assert "1 g/kg/day × 70 kg = 70 g/day for 2 days" in card["detail"]
    assert "0.4 g/kg/day × 70 kg = 28 g/day for 5 days" in card["detail"]
    assert suggested(card) == [(70, 2), (28, 5)]


def test_the_departure_summary_does_not_reduce_the_range_to_its_two_day_end(cds):
    # The guideline's regimen is "2 g/kg in 2-5 days"; a summary naming only "1 g/kg/day for 2 days"
    # misstates it (a 5-day course is just as much the guideline's regimen).
    card = cidp_cards(cds, order=ivig_order(daily_g=60, days=5), hook="order-sign")["CIDP-2"]
    assert "5 days" in card["summary"], card["summary"]


def test_without_a_weight_no_absolute_dose_is_offered(cds):
    card = cidp_cards(cds, weights=[])["CIDP-2"]
    assert "suggestions" not in card and "selectionBehavior" not in card
    assert "Body weight: missing" in card["detail"]
    assert "1 g/kg/day for 2 days (2 g/kg in total)" in card["detail"]
    assert "0.4 g/kg/day for 5 days (2 g/kg in total)" in card["detail"]
