"""Properties of the set of cards one call returns, on every catalogue patient (tests/patients.py): what one card
says, no other card contradicts or repeats."""

from __future__ import annotations

import pytest

from tests.card_checks import stated_topics
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


def _stances(knowledge, card: dict) -> set[str]:
    """Which way the recommendations a card states go: 'for' or 'against' IVIG, or 'none' (the guideline makes none);
    statements (safety, notes) take no side."""
    by_code = {r.action_id: r for r in knowledge.recommendations}
    found = set()
    for code in stated_topics(card):
        rec = by_code.get(code)
        if rec is not None and rec.level.get("code") == "none":
            found.add("none")
        elif rec is not None and rec.direction in ("for", "against"):
            found.add(rec.direction)
    return found


@pytest.mark.parametrize("name", sorted(PATIENTS))
def test_no_card_contradicts_another(app, cds, name):
    """A card against IVIG beside another card for it, or beside one saying the guideline makes no recommendation,
    leaves the clinician to find out which is right (DM beside IBM, PPMS, NMO beside an MS code). Where the record
    cannot tell, one card states both and says what decides (a decision); where one diagnosis is the more specific or
    the recommendation against is at the higher level, it speaks alone."""
    knowledge = app.extensions["ivig_cds"].knowledge
    sides = [(card["summary"], _stances(knowledge, card)) for card in cds(PATIENTS[name])]
    against = [summary for summary, found in sides if found == {"against"}]
    other = [summary for summary, found in sides if found and "against" not in found]
    assert not (against and other), (name, against, other)
