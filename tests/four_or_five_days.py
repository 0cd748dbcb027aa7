"""Checks shared by the recommendations whose regimen is "0.4 g/kg/day for 4-5 days" (ADEM-1, EPI-1), for a 70 kg
patient."""

from __future__ import annotations

from tests.fhir_data import suggested_courses

FOUR_OR_FIVE_DAYS_FOR_70_KG = [(28, 4), (28, 5)]  # 0.4 g/kg/day x 4 days, 0.4 g/kg/day x 5 days


def assert_offers_four_and_five_days(card: dict) -> None:
    """With 70 kg: both courses, as alternatives of which the clinician takes one at the most, each in the detail."""
    assert card["selectionBehavior"] == "at-most-one"
    assert suggested_courses(card) == FOUR_OR_FIVE_DAYS_FOR_70_KG
    assert "0.4 g/kg/day × 70 kg = 28 g/day for 4 days, 112 g in total" in card["detail"]
    assert "0.4 g/kg/day × 70 kg = 28 g/day for 5 days, 140 g in total" in card["detail"]


def assert_28_g_for_3_days_departs(card: dict) -> None:
    """The card for a draft of 28 g/day for 3 days (70 kg): a warning that offers both courses."""
    assert card["indicator"] == "warning" and card["overrideReasons"]
    assert card["summary"].startswith("IVIG draft: 25 % below the guideline's course total, 1 day shorter")
    assert "The draft order gives 0.4 g/kg/day (28 g/day) for 3 days" in card["detail"]
    assert suggested_courses(card) == FOUR_OR_FIVE_DAYS_FOR_70_KG
