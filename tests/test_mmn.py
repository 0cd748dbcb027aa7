"""Multifocal motor neuropathy (rows MMN-1..3 and the corticosteroid warning MMN-w), through the HTTP API."""

from __future__ import annotations

import pytest

from tests.card_checks import assert_follows_the_regimen, assert_states
from tests.fhir_data import (
    SNOMED,
    condition,
    corticosteroid,
    dosed_ivig_order,
    duration,
    earlier_ivig_course,
    ivig_order,
    medication_request,
    mmn,
    weight,
)
from tests.range_regimen import (
    DRAFTS_WITHIN_THE_RANGE,
    assert_60_g_for_5_days_departs,
    assert_no_absolute_dose_without_weight,
    assert_offers_both_ends,
)

MMN_CODES = [("G61.82", "http://hl7.org/fhir/sid/icd-10-cm"), ("230591002", SNOMED)]
CHAPTER = ("MMN-1", "MMN-2", "MMN-3", "MMN-w")


def mmn_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [mmn()], **data})


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("topic, data, indicator, level, sentence", [
    ("MMN-1", {}, "info", "Level A",
     "As there is no other treatment of proven benefit, the recommendation is to use IVIG (2 g/kg in 2–5 days) "
     "as a first-line treatment (level A)."),
    ("MMN-2", {"medications": [earlier_ivig_course(28)]}, "info", "Level C",
     "If the initial IVIG treatment is effective, repeated infusions should be considered (level C)."),
    ("MMN-3", {"medications": [earlier_ivig_course(28)]}, "info", "Good practice point",
     "Furthermore, the frequency of maintenance therapy should be guided by the individual response, whereby "
     "typical treatment regimens are 1 g/kg every 2–4 weeks or 2 g/kg every 4–8 weeks (good practice point)."),
    ("MMN-w", {"medications": [corticosteroid()]}, "warning", "Guideline statement (no level)",
     "MMN does usually not respond to steroids or PE, and patients may worsen when they receive these treatments"),
])
def test_each_recommendation_fires_with_its_indicator_level_and_sentence(cards_by_topic, hook, topic, data, indicator, level, sentence):
    card = mmn_cards(cards_by_topic, hook=hook, **data)[topic]
    assert_states(card, indicator=indicator, level=level, sentence=sentence)
    if indicator == "warning":
        assert card["overrideReasons"]


@pytest.mark.parametrize("code, system", MMN_CODES)
def test_a_first_course_gets_the_level_a_card_only(cards_by_topic, code, system):
    cards = mmn_cards(cards_by_topic, conditions=[condition(code, system)])
    assert "MMN-1" in cards
    assert not {"MMN-2", "MMN-3", "MMN-w"} & set(cards)


@pytest.mark.parametrize("status", ["completed", "active", "on-hold"])
def test_an_earlier_ivig_order_brings_repeat_and_maintenance_instead_of_first_line(cards_by_topic, status):
    cards = mmn_cards(cards_by_topic, medications=[earlier_ivig_course(28, status)])
    assert {"MMN-2", "MMN-3"} <= set(cards)
    assert "MMN-1" not in cards
    assert "suggestions" not in cards["MMN-2"] and "suggestions" not in cards["MMN-3"]


def test_a_corticosteroid_drafted_in_the_same_session_brings_the_warning(cards_by_topic):
    cards = mmn_cards(cards_by_topic, hook="order-sign", others=[medication_request("H02AB07", status="draft", id="pred-1")])
    assert cards["MMN-w"]["indicator"] == "warning"


@pytest.mark.parametrize("medications", [[], [corticosteroid(status="completed")], [corticosteroid(status="stopped")]])
def test_no_active_corticosteroid_no_warning(cards_by_topic, medications):
    assert "MMN-w" not in mmn_cards(cards_by_topic, medications=medications)


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(verification="refuted"), dict(verification="entered-in-error")])
def test_an_mmn_that_is_not_a_current_diagnosis_gives_no_mmn_card(cards_by_topic, status):
    cards = mmn_cards(cards_by_topic, conditions=[mmn(**status)], medications=[corticosteroid()])
    assert not [code for code in cards if code in CHAPTER]


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    prednisone_draft = corticosteroid() | {"status": "draft", "id": "pred-1"}
    assert mmn_cards(cards_by_topic, order=prednisone_draft, weights=[weight(70)]) == {}  # no card at all


# --- MMN-1 regimen: 2 g/kg in 2-5 days ---------------------------------------------------------------


def test_with_70_kg_the_two_ends_of_the_range_are_offered_as_alternatives(cards_by_topic):
    card = mmn_cards(cards_by_topic)["MMN-1"]
    assert_offers_both_ends(card)
    assert all(s["uuid"] for s in card["suggestions"])


@pytest.mark.parametrize("daily_g, days", DRAFTS_WITHIN_THE_RANGE)
def test_a_draft_within_the_range_follows_the_regimen(cards_by_topic, daily_g, days):
    card = mmn_cards(cards_by_topic, order=ivig_order(daily_g=daily_g, days=days), hook="order-select")["MMN-1"]
    assert_follows_the_regimen(card)


def test_a_draft_of_60_g_for_5_days_departs_in_one_critical_card(cards_by_topic):
    card = mmn_cards(cards_by_topic, order=ivig_order(daily_g=60, days=5), hook="order-sign")["MMN-1"]
    assert_60_g_for_5_days_departs(card)


def test_without_a_weight_no_absolute_dose_is_offered(cards_by_topic):
    card = mmn_cards(cards_by_topic, weights=[])["MMN-1"]
    assert_no_absolute_dose_without_weight(card)


# --- maintenance (MMN-3: 1 g/kg every 2-4 weeks or 2 g/kg every 4-8 weeks) ----------------------------------------

HIGHEST = "SAFE-course-above-highest"


def every_3_weeks(grams: float, **repeat) -> dict:
    return dosed_ivig_order(grams, "g", period=3, periodUnit="wk", **repeat)


@pytest.mark.parametrize("repeat", [{"count": 6}, {"boundsDuration": duration(26, "wk")}], ids=["6-times", "for-26-weeks"])
def test_the_guidelines_maintenance_regimen_is_judged_by_one_treatment_not_the_months_added_up(cards_by_topic, repeat):
    """70 g every 3 weeks for a 70 kg patient is 1 g/kg a treatment, the guideline's own maintenance regimen: six of
    them are not one 6 g/kg course above the highest total the guideline gives."""
    cards = mmn_cards(cards_by_topic, order=every_3_weeks(70, **repeat), hook="order-sign", medications=[earlier_ivig_course(21)])
    assert not {HIGHEST, "SAFE-order-unreadable"} & set(cards)


def test_a_tenfold_maintenance_dose_is_critical_and_says_it_is_one_treatment(cards_by_topic):
    card = mmn_cards(cards_by_topic, order=every_3_weeks(700, count=6), hook="order-sign", medications=[earlier_ivig_course(21)])[HIGHEST]
    assert card["indicator"] == "critical"
    assert card["summary"].startswith("IVIG course 10 g/kg: about 5 times the highest total")
    assert ("The draft order gives 10 g/kg (700 g) every 3 weeks, 6 times: a maintenance schedule, whose course is one treatment"
            in card["detail"])


def test_a_maintenance_schedule_as_a_first_course_is_half_the_first_line_course(cards_by_topic):
    card = mmn_cards(cards_by_topic, order=every_3_weeks(70, count=6), hook="order-select")["MMN-1"]
    assert ("The draft order gives 1 g/kg (70 g) every 3 weeks, 6 times: a maintenance schedule, whose course is one treatment; "
            "the guideline's regimen is 2 g/kg over 2–5 days") in card["detail"]
    assert card["summary"].startswith("IVIG draft: 50 % below the guideline's course total")


def test_a_who_category_sent_with_a_specific_mmn_code_is_mmn_alone(cards_by_topic):
    """WHO G61.8 beside SNOMED CT MMN in one Condition is an MMN: no CIDP card from the broader code."""
    both = condition("G61.8", "http://hl7.org/fhir/sid/icd-10")
    both["code"]["coding"].append({"system": SNOMED, "code": "230591002", "display": "MMN"})
    cards = mmn_cards(cards_by_topic, conditions=[both])
    assert "MMN-1" in cards and not any(topic.startswith("CIDP") for topic in cards), sorted(cards)
