"""Sporadic inclusion body myositis (row IBM-1), through the HTTP API."""

from __future__ import annotations

import re

import pytest

from tests.card_checks import assert_states, assert_warning_without_suggestions
from tests.fhir_data import SNOMED, condition, corticosteroid, ivig_order

IBM_1 = "IVIG can not be recommended for the treatment of sporadic IBM (level A)."


def ibm_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [condition("G72.41", display="Inclusion body myositis [IBM]")], **data})


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("code, system", [
    ("G72.41", "http://hl7.org/fhir/sid/icd-10-cm"), ("72315009", SNOMED), ("1144926009", SNOMED),
])
def test_ibm_is_a_level_a_warning_against_ivig(cards_by_topic, hook, code, system):
    card = ibm_cards(cards_by_topic, hook=hook, conditions=[condition(code, system)])["IBM-1"]
    assert_states(card, indicator="warning", level="Level A", sentence=IBM_1)
    assert_warning_without_suggestions(card, stating="against IVIG")


def test_a_dosed_draft_gets_no_dose_advice(cards_by_topic):
    card = ibm_cards(cards_by_topic, order=ivig_order(daily_g=28, days=5), hook="order-sign")["IBM-1"]
    assert card["indicator"] == "warning" and "suggestions" not in card
    assert not re.search(r"\d g/day", card["detail"])


def test_polymyositis_is_not_ibm(cards_by_topic):
    assert "IBM-1" not in ibm_cards(cards_by_topic, conditions=[condition("M33.2", display="Polymyositis")])


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(verification="refuted")])
def test_a_resolved_or_refuted_diagnosis_is_not_an_indication(cards_by_topic, status):
    assert "IBM-1" not in ibm_cards(cards_by_topic, conditions=[condition("G72.41", **status)])


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    assert ibm_cards(cards_by_topic, order=corticosteroid() | {"status": "draft", "id": "pred-1"}) == {}
