"""Multifocal motor neuropathy (rows MMN-1..3 and the corticosteroid warning MMN-w), through the HTTP API."""

from __future__ import annotations

import pytest

from tests.conftest import topics
from tests.fhir_data import SNOMED, condition, days_ago, hook_request, ivig_order, medication_request, prefetch, weight

MMN_CODES = [("G61.82", "http://hl7.org/fhir/sid/icd-10-cm"), ("230591002", SNOMED)]
CHAPTER = ("MMN-1", "MMN-2", "MMN-3", "MMN-w")


def mmn(**kwargs) -> dict:
    return condition("G61.82", display="Multifocal motor neuropathy", **kwargs)


def earlier_course(status: str = "completed") -> dict:
    return medication_request("J06BA02", status=status, authored=days_ago(28))


def prednisone(status: str = "active") -> dict:
    return medication_request("H02AB07", display="prednisone", status=status)


def mmn_cards(cds, *, order=None, hook="order-select", others=(), **data) -> dict[str, dict]:
    data.setdefault("conditions", [mmn()])
    data.setdefault("weights", [weight(70, when=days_ago(1))])
    return topics(cds(hook_request([order or ivig_order(), *others], hook=hook, prefetch=prefetch(**data))))


def suggested(card: dict) -> list[tuple[float, int]]:
    out = []
    for s in card.get("suggestions", []):
        dosage = s["actions"][0]["resource"]["dosageInstruction"][0]
        out.append((dosage["doseAndRate"][0]["doseQuantity"]["value"], dosage["timing"]["repeat"]["boundsDuration"]["value"]))
    return out


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("topic, data, indicator, level, sentence", [
    ("MMN-1", {}, "info", "Level A",
     "As there is no other treatment of proven benefit, the recommendation is to use IVIG (2 g/kg in 2–5 days) "
     "as a first-line treatment (level A)."),
    ("MMN-2", {"medications": [earlier_course()]}, "info", "Level C",
     "If the initial IVIG treatment is effective, repeated infusions should be considered (level C)."),
    ("MMN-3", {"medications": [earlier_course()]}, "info", "Good practice point",
     "Furthermore, the frequency of maintenance therapy should be guided by the individual response, whereby "
     "typical treatment regimens are 1 g/kg every 2–4 weeks or 2 g/kg every 4–8 weeks (good practice point)."),
    ("MMN-w", {"medications": [prednisone()]}, "warning", "Guideline statement (no level)",
     "MMN does usually not respond to steroids or PE, and patients may worsen when they receive these treatments"),
])
def test_each_recommendation_fires_with_its_indicator_level_and_sentence(cds, hook, topic, data, indicator, level, sentence):
    card = mmn_cards(cds, hook=hook, **data)[topic]
    assert card["indicator"] == indicator
    assert level in card["detail"]
    assert sentence in card["detail"]
    assert len(card["summary"]) < 140
    if indicator == "warning":
        assert card["overrideReasons"]


@pytest.mark.parametrize("code, system", MMN_CODES)
def test_a_first_course_gets_the_level_a_card_only(cds, code, system):
    cards = mmn_cards(cds, conditions=[condition(code, system)])
    assert "MMN-1" in cards
    assert not {"MMN-2", "MMN-3", "MMN-w"} & set(cards)


@pytest.mark.parametrize("status", ["completed", "active", "on-hold"])
def test_an_earlier_ivig_order_brings_repeat_and_maintenance_instead_of_first_line(cds, status):
    cards = mmn_cards(cds, medications=[earlier_course(status)])
    assert {"MMN-2", "MMN-3"} <= set(cards)
    assert "MMN-1" not in cards
    assert "suggestions" not in cards["MMN-2"] and "suggestions" not in cards["MMN-3"]


def test_a_corticosteroid_drafted_in_the_same_session_brings_the_warning(cds):
    cards = mmn_cards(cds, hook="order-sign", others=[medication_request("H02AB07", status="draft", id="pred-1")])
    assert cards["MMN-w"]["indicator"] == "warning"


@pytest.mark.parametrize("medications", [[], [prednisone(status="completed")], [prednisone(status="stopped")]])
def test_no_active_corticosteroid_no_warning(cds, medications):
    assert "MMN-w" not in mmn_cards(cds, medications=medications)


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(verification="refuted"), dict(verification="entered-in-error")])
def test_an_mmn_that_is_not_a_current_diagnosis_gives_no_mmn_card(cds, status):
    cards = mmn_cards(cds, conditions=[mmn(**status)], medications=[prednisone()])
    assert not [code for code in cards if code in CHAPTER]


def test_an_order_that_is_not_ivig_gets_no_card(cds):
    body = hook_request([prednisone() | {"status": "draft", "id": "pred-1"}],
                        prefetch=prefetch(conditions=[mmn()], weights=[weight(70)]))
    assert cds(body) == []


# --- MMN-1 regimen: 2 g/kg in 2-5 days ---------------------------------------------------------------


def test_with_70_kg_the_two_ends_of_the_range_are_offered_as_alternatives(cds):
    card = mmn_cards(cds)["MMN-1"]
    assert card["selectionBehavior"] == "at-most-one"
    assert suggested(card) == [(70, 2), (28, 5)]
    assert all(s["uuid"] for s in card["suggestions"])


@pytest.mark.parametrize("daily_g, days", [(70, 2), (35, 4), (28, 5)])
def test_a_draft_within_the_range_follows_the_regimen(cds, daily_g, days):
    card = mmn_cards(cds, order=ivig_order(daily_g=daily_g, days=days), hook="order-sign")["MMN-1"]
    assert card["indicator"] == "info" and "suggestions" not in card
    assert "this follows the guideline's regimen" in card["detail"]


def test_a_draft_of_60_g_for_5_days_departs_and_is_a_warning(cds):
    card = mmn_cards(cds, order=ivig_order(daily_g=60, days=5), hook="order-sign")["MMN-1"]
    assert card["indicator"] == "warning" and card["overrideReasons"]
    assert "departs" in card["summary"] and len(card["summary"]) < 140
    assert "The draft order gives 0.86 g/kg/day (60 g/day) for 5 days, 4.29 g/kg in total" in card["detail"]
    assert "; the guideline's regimen is " in card["detail"]  # the draft does not follow it
    assert "1 g/kg/day × 70 kg = 70 g/day for 2 days" in card["detail"]
    assert "0.4 g/kg/day × 70 kg = 28 g/day for 5 days" in card["detail"]
    assert suggested(card) == [(70, 2), (28, 5)]


def test_without_a_weight_no_absolute_dose_is_offered(cds):
    card = mmn_cards(cds, weights=[])["MMN-1"]
    assert "suggestions" not in card
    assert "Body weight: missing" in card["detail"]
    assert "1 g/kg/day for 2 days (2 g/kg in total)" in card["detail"]
    assert "0.4 g/kg/day for 5 days (2 g/kg in total)" in card["detail"]
