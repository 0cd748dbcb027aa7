"""Checks shared by the recommendations whose regimen is "2 g/kg in 2-5 days" (CIDP-2, MMN-1), for a 70 kg patient."""

from __future__ import annotations

from tests.fhir_data import suggested_courses

RANGE_ENDS_FOR_70_KG = [(70, 2), (28, 5)]  # 1 g/kg/day x 2 days, 0.4 g/kg/day x 5 days
DRAFTS_WITHIN_THE_RANGE = [(70, 2), (35, 4), (28, 5)]  # (daily grams, days) for 70 kg


def assert_offers_both_ends(card: dict) -> None:
    """Both ends of the range, as alternatives of which the clinician takes one at the most."""
    assert card["selectionBehavior"] == "at-most-one"
    assert suggested_courses(card) == RANGE_ENDS_FOR_70_KG


def assert_details_both_ends(card: dict) -> None:
    """The detail computes both ends of the range for 70 kg."""
    assert "1 g/kg/day × 70 kg = 70 g/day for 2 days, 140 g in total" in card["detail"]
    assert "0.4 g/kg/day × 70 kg = 28 g/day for 5 days, 140 g in total" in card["detail"]


def assert_60_g_for_5_days_departs(card: dict) -> None:
    """The card for a draft of 60 g/day for 5 days (70 kg): 4.29 g/kg is above any course the guideline gives, so one
    critical card says both the departure and that, and offers both ends of the range."""
    assert card["indicator"] == "critical" and card["overrideReasons"]
    assert "SAFE-course-above-highest" in card["extension"]["org.ivig-cds.states"]
    assert card["detail"].startswith("**IVIG course 4.29 g/kg: about 2.1 times the highest total the guideline gives")
    assert card["summary"].startswith("IVIG draft: about 2.1 times the guideline's course total") and len(card["summary"]) < 140
    assert "The draft order gives 0.86 g/kg/day (60 g/day) for 5 days, 4.29 g/kg (300 g) in total" in card["detail"]
    assert "; the guideline's regimen is " in card["detail"]  # the draft does not follow it
    assert "1 g/kg/day × 70 kg = 70 g/day for 2 days" in card["detail"]
    assert "0.4 g/kg/day × 70 kg = 28 g/day for 5 days" in card["detail"]
    assert suggested_courses(card) == RANGE_ENDS_FOR_70_KG


def assert_no_absolute_dose_without_weight(card: dict) -> None:
    assert "suggestions" not in card
    assert "Body weight: missing" in card["detail"]
    assert "1 g/kg/day for 2 days (2 g/kg in total)" in card["detail"]
    assert "0.4 g/kg/day for 5 days (2 g/kg in total)" in card["detail"]
