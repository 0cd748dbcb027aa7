"""Post-polio syndrome (rows PPS-1, PPS-2), through the HTTP API."""

from __future__ import annotations

import pytest

from tests.card_checks import assert_offers_no_dose, assert_states, assert_warning_without_suggestions
from tests.fhir_data import SNOMED, condition, corticosteroid, ivig_order

CHAPTER = ("PPS-1", "PPS-2")
PPS_1 = ("As long as responding subgroups, long-term effects, dosing schedules and cost-benefit aspects are not known, "
         "routine use of IVIG for PPS cannot be recommended (good practice point).")
PPS_2 = ("However, in the very few patients with especially rapid progression of muscle weakness and atrophy, especially "
         "if there are indications of ongoing low-grade inflammation in the spinal cord, IVIG may be tried if a rigorous "
         "follow-up of muscle strength and quality of life can be undertaken (good practice point).")


def pps_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [condition("G14", display="Postpolio syndrome")], **data})


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("topic, indicator, sentence", [("PPS-1", "warning", PPS_1), ("PPS-2", "warning", PPS_2)])
def test_each_recommendation_fires_with_its_indicator_level_and_sentence(cards_by_topic, hook, topic, indicator, sentence):
    card = pps_cards(cards_by_topic, hook=hook)[topic]
    assert_states(card, indicator=indicator, level="Good practice point", sentence=sentence)


@pytest.mark.parametrize("code, system", [("G14", "http://hl7.org/fhir/sid/icd-10-cm"), ("31097004", SNOMED)])
def test_routine_ivig_is_a_warning_against_without_suggestions(cards_by_topic, code, system):
    card = pps_cards(cards_by_topic, conditions=[condition(code, system)])["PPS-1"]
    assert_warning_without_suggestions(card, stating="against IVIG")


@pytest.mark.parametrize("order, hook", [(None, "order-select"), (ivig_order(daily_g=28, days=5), "order-sign")])
def test_no_dose_is_stated_so_none_is_offered(cards_by_topic, order, hook):
    cards = pps_cards(cards_by_topic, order=order, hook=hook)
    for topic in CHAPTER:
        assert_offers_no_dose(cards[topic])


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(verification="refuted")])
def test_a_resolved_or_refuted_diagnosis_is_not_an_indication(cards_by_topic, status):
    cards = pps_cards(cards_by_topic, conditions=[condition("G14", **status)])
    assert not [code for code in cards if code in CHAPTER]


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    assert pps_cards(cards_by_topic, order=corticosteroid() | {"status": "draft", "id": "pred-1"}) == {}
