"""Properties of the set of cards one call returns, on every catalogue patient (tests/patients.py): what one card
says, no other card contradicts or repeats."""

from __future__ import annotations

import pytest

from tests.conftest import topics
from tests.patients import catalogue

PATIENTS = catalogue()


@pytest.mark.parametrize("name", sorted(PATIENTS))
def test_at_most_one_card_offers_orders(cds, name):
    """Every offered order replaces the whole draft course: two cards offering orders would let a clinician replace
    the same draft twice, each time with another regimen."""
    cards = cds(PATIENTS[name])
    offering = [c["summary"] for c in cards if c.get("suggestions")]
    assert len(offering) <= 1, (name, offering)
    for card in cards:
        if "No order is offered with this card" in card["detail"]:
            assert "suggestions" not in card and offering, (name, card["summary"])


@pytest.mark.parametrize("name", sorted(PATIENTS))
def test_no_recommendation_is_said_twice(cds, name):
    cards = cds(PATIENTS[name])
    codes = [c["source"]["topic"]["code"] for c in cards]
    assert len(codes) == len(set(codes)) and len(topics(cards)) >= len(cards), (name, codes)
