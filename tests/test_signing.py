"""At signing, only what is wrong: the property holds on every catalogue patient (tests/patients.py), whatever the
chapter. A clinician saw the guidance when the order was selected; repeating it at signing teaches them to click
cards away."""

from __future__ import annotations

import copy

import pytest

from tests.patients import catalogue

PATIENTS = catalogue()


def _signed(request: dict) -> dict:
    """The same orders and record, sent at signing (every draft is signed; order-sign has no selections)."""
    signed = copy.deepcopy(request)
    signed["hook"] = "order-sign"
    signed["context"].pop("selections", None)
    return signed


@pytest.mark.parametrize("name", sorted(PATIENTS))
def test_at_signing_only_warnings_and_departures_are_said(cds, name):
    for card in cds(_signed(PATIENTS[name])):
        departs = card["summary"].startswith("IVIG draft:")
        assert card["indicator"] != "info" or departs, (name, card["summary"])


@pytest.mark.parametrize("name", sorted(n for n, r in PATIENTS.items() if r["hook"] == "order-select"))
def test_every_warning_shown_at_selection_is_shown_again_at_signing(cds, name):
    request = PATIENTS[name]

    def topics(cards: list[dict]) -> set[str]:
        return {c["source"]["topic"]["code"] for c in cards if c["indicator"] != "info"}

    assert topics(cds(request)) <= topics(cds(_signed(request))), name
