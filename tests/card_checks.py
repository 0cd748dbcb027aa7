"""Checks on a single card that the chapter tests share: what a recommendation's card states, and what a card
that offers no dose, or warns, carries."""

from __future__ import annotations

import re

from cds_service.cards import STATES


def assert_states(card: dict, *, indicator: str, level: str, sentence: str, topic: str | None = None) -> None:
    """The card has `indicator`, states the recommendation's `level` and quotes its guideline `sentence`, and its
    summary is short (under 140 characters); with `topic`, its source topic is that recommendation code, or a
    decision that states it among others."""
    assert card["indicator"] == indicator
    assert level in card["detail"]
    assert sentence in card["detail"]
    if topic is not None:
        assert topic in stated_topics(card)
    assert len(card["summary"]) < 140


def stated_topics(card: dict) -> list[str]:
    """The recommendation codes a card states: its own, or for a decision, the ones it states (its extension)."""
    return card.get("extension", {}).get(STATES, [card["source"]["topic"]["code"]])


def assert_warning_without_suggestions(card: dict, *, stating: str) -> None:
    """A warning the clinician can override (it has override reasons), `stating` in its detail, offering nothing."""
    assert card["indicator"] == "warning" and stating in card["detail"]
    assert "suggestions" not in card and card["overrideReasons"]


def assert_follows_the_regimen(card: dict) -> None:
    """The card for a draft that follows the guideline's regimen: information, nothing to change."""
    assert card["indicator"] == "info" and "suggestions" not in card
    assert "this follows the guideline's regimen" in card["detail"]


def assert_offers_no_dose(card: dict) -> None:
    """The guideline states no dose for the card's recommendation: it offers none and names no daily grams."""
    assert "suggestions" not in card and "selectionBehavior" not in card
    assert not re.search(r"\d g/day", card["detail"]), card["detail"]
