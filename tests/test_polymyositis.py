"""Polymyositis (row PM-1), through the HTTP API."""

from __future__ import annotations

import pytest

from tests.card_checks import assert_offers_no_dose, assert_states
from tests.fhir_data import SNOMED, condition, corticosteroid, ivig_order

PM_1 = ("IVIG may be considered amongst the treatment options for patients with polymyositis not responding to "
        "first-line immunosuppressive treatment (level C).")


def pm_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [condition("M33.20", display="Polymyositis, organ involvement unspecified")], **data})


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("code, system", [
    ("M33.20", "http://hl7.org/fhir/sid/icd-10-cm"), ("M33.22", "http://hl7.org/fhir/sid/icd-10-cm"), ("31384009", SNOMED),
])
def test_polymyositis_gets_the_level_c_card(cards_by_topic, hook, code, system):
    card = pm_cards(cards_by_topic, hook=hook, conditions=[condition(code, system)])["PM-1"]
    assert_states(card, indicator="info", level="Level C", sentence=PM_1)


@pytest.mark.parametrize("order", [None, ivig_order(daily_g=28, days=5)], ids=["undosed", "dosed"])
def test_no_dose_is_stated_so_none_is_offered(cards_by_topic, order):
    # "Dose and duration of the treatment are as recommended for DM", and DM has none.
    assert_offers_no_dose(pm_cards(cards_by_topic, order=order)["PM-1"])


def test_dermatomyositis_is_not_polymyositis(cards_by_topic):
    assert "PM-1" not in pm_cards(cards_by_topic, conditions=[condition("M33.10")], medications=[corticosteroid()])


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(verification="refuted")])
def test_a_resolved_or_refuted_diagnosis_is_not_an_indication(cards_by_topic, status):
    assert "PM-1" not in pm_cards(cards_by_topic, conditions=[condition("M33.20", **status)])


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    assert pm_cards(cards_by_topic, order=corticosteroid() | {"status": "draft", "id": "pred-1"}) == {}


def test_a_polymyositis_relabelled_as_inclusion_body_myositis_gets_the_ibm_card_alone(cards_by_topic):
    """A 'polymyositis not responding to treatment' later found to be sporadic IBM keeps both codes on the problem
    list: 'IVIG may be considered (Level C)' beside 'IVIG is not recommended (Level A)' contradicted each other. Once
    IBM is diagnosed, IBM-1 is the guideline's word."""
    both = [condition("M33.20", display="Polymyositis"), condition("G72.41", display="Inclusion body myositis")]
    cards = pm_cards(cards_by_topic, conditions=both)
    assert "IBM-1" in cards and "PM-1" not in cards, sorted(cards)
