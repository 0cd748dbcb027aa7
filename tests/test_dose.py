"""Dose arithmetic and the draft-order comparison, through the HTTP API (GBS-1: 0.4 g/kg/day for 5 days)."""

from __future__ import annotations

import re

import pytest

from tests.fhir_data import days_ago, gbs, ivig_order, suggested_courses, weight


def gbs1(cards_by_topic, order, weights, hook="order-sign"):
    return cards_by_topic(order=order, hook=hook, conditions=[gbs()], weights=weights)["GBS-1"]


def suggested_grams(card):
    return [daily_g for daily_g, _ in suggested_courses(card)]


def test_pounds_are_converted_to_kilograms(cards_by_topic):
    card = gbs1(cards_by_topic, ivig_order(), [weight(154, "[lb_av]")])
    assert "154 [lb_av] = 69.85 kg" in card["detail"]
    assert "0.4 g/kg/day × 69.85 kg = 27.9 g/day for 5 days, 139.5 g in total" in card["detail"]
    assert suggested_grams(card) == [27.9]


def test_the_latest_weight_is_used_and_its_date_stated(cards_by_topic):
    card = gbs1(cards_by_topic, ivig_order(), [weight(80, when=days_ago(200)), weight(70, when=days_ago(3))])
    assert f"70 kg (measured {days_ago(3)})" in card["detail"]
    assert suggested_grams(card) == [28]


@pytest.mark.parametrize("weights, why", [
    ([], "No body weight is on record"),
    ([weight(70000, "g")], "not a usable value in kg or [lb_av] (g)"),
])
def test_no_usable_weight_means_no_absolute_dose(cards_by_topic, weights, why):
    card = gbs1(cards_by_topic, ivig_order(), weights)
    assert "suggestions" not in card
    assert "Body weight: missing" in card["detail"] and why in card["detail"]
    assert "0.4 g/kg/day for 5 days (2 g/kg in total)" in card["detail"]
    assert not re.search(r"\d g/day", card["detail"])  # no absolute daily dose anywhere


@pytest.mark.parametrize("order", [
    ivig_order(daily_g=28, days=5),
    ivig_order(daily_g=30, days=5),        # rounded up to whole vials: within 10 %
    ivig_order(per_kg=0.4, days=5),        # written per kg
])
def test_a_draft_that_follows_the_regimen_gets_no_suggestion(cards_by_topic, order):
    card = gbs1(cards_by_topic, order, [weight(70)])
    assert card["indicator"] == "info" and "suggestions" not in card
    assert "this follows the guideline's regimen" in card["detail"]


@pytest.mark.parametrize("order, said", [
    (ivig_order(daily_g=42, days=5), "0.6 g/kg/day (42 g/day) for 5 days, 3 g/kg in total"),
    (ivig_order(daily_g=28, days=3), "0.4 g/kg/day (28 g/day) for 3 days, 1.2 g/kg in total"),
    (ivig_order(daily_g=70, days=2), "1 g/kg/day (70 g/day) for 2 days, 2 g/kg in total"),
])
def test_a_draft_that_departs_is_a_warning_with_the_regimen_as_suggestion(cards_by_topic, order, said):
    card = gbs1(cards_by_topic, order, [weight(70)])
    assert card["indicator"] == "warning" and card["overrideReasons"]
    assert card["summary"].startswith("IVIG draft departs from the guideline regimen (Level A)")
    assert said in card["detail"] and "the guideline's regimen is 0.4 g/kg/day for 5 days" in card["detail"]
    assert suggested_grams(card) == [28]


def test_departure_is_judged_per_kg_even_without_a_weight(cards_by_topic):
    card = gbs1(cards_by_topic, ivig_order(per_kg=1, days=5), [])
    assert card["indicator"] == "warning" and "suggestions" not in card


def test_a_draft_without_dose_on_order_select_is_not_called_a_departure(cards_by_topic):
    card = gbs1(cards_by_topic, ivig_order(), [weight(70)], hook="order-select")
    assert card["indicator"] == "info" and suggested_grams(card) == [28]
    assert "departs" not in card["detail"]


def test_draft_with_days_but_no_dose_says_it_cannot_be_checked(cards_by_topic):
    card = gbs1(cards_by_topic, ivig_order(days=5), [weight(70)])
    assert "does not state a daily dose" in card["detail"] and card["indicator"] == "info"
