"""Paraproteinaemic demyelinating neuropathy (rows PDN-1..4), through the HTTP API."""

from __future__ import annotations

import pytest

from tests.card_checks import assert_states, assert_warning_without_suggestions
from tests.fhir_data import SNOMED, cidp, condition, medication_request, weight

CHAPTER = ("PDN-1", "PDN-2", "PDN-3", "PDN-4")


def mgus(**kwargs) -> dict:
    return condition("D47.2", display="Monoclonal gammopathy", **kwargs)


def neuropathy(**kwargs) -> dict:
    return condition("G63", display="Polyneuropathy in diseases classified elsewhere", **kwargs)


def pdn_cards(cards_by_topic, conditions, hook="order-select", order=None) -> dict[str, dict]:
    return cards_by_topic(order=order, hook=hook, conditions=conditions, weights=[weight(70)])


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("topic, indicator, level, sentence", [
    ("PDN-1", "warning", "Level B",  # stated with PDN-2 and PDN-3: class and disability decide
     "IVIG should be considered as initial treatment of demyelinating IgM MGUS-related neuropathy (level B recommendation)."),
    ("PDN-2", "warning", "Good practice point",
     "As long as long-term effects and cost-benefit aspects are not known, routine use of IVIG cannot be recommended "
     "in patients without significant disability (good practice point)."),
    ("PDN-3", "warning", "Good practice point",
     "However, in patients with significant disability or rapid worsening, IVIG may be tried, although its efficacy "
     "is not proven (good practice point)."),
])
def test_mgus_with_neuropathy_fires_with_indicator_level_and_sentence(cards_by_topic, hook, topic, indicator, level, sentence):
    card = pdn_cards(cards_by_topic, [mgus(), neuropathy()], hook)[topic]
    assert_states(card, indicator=indicator, level=level, sentence=sentence)
    assert "suggestions" not in card  # the guideline states no dose here
    if indicator == "warning":
        assert_warning_without_suggestions(card, stating="against IVIG")


def test_cidp_like_neuropathy_with_a_paraprotein_is_treated_as_cidp(cards_by_topic):
    cards = pdn_cards(cards_by_topic, [mgus(), cidp()])
    card = cards["PDN-4"]
    assert card["indicator"] == "info"
    assert ("In patients with CIDP-like neuropathy, the detection of paraproteinaemia does not justify a different "
            "therapeutic approach from CIDP without a paraprotein.") in card["detail"]
    assert {"CIDP-1", "CIDP-2"} <= set(cards)  # the CIDP recommendations apply
    assert not {"PDN-1", "PDN-2", "PDN-3"} & set(cards)


def test_pdn_4_states_no_level_because_the_guideline_gives_its_sentence_none(cards_by_topic):
    # The seed's recommendation paragraph gives the CIDP-like sentence no level (unlike the two sentences
    # before it, each "(good practice point)"); the action's own description says so, yet it is coded GPP.
    card = pdn_cards(cards_by_topic, [mgus(), cidp()])["PDN-4"]
    assert "Good practice point" not in card["detail"] and "(GPP)" not in card["summary"]
    assert "Guideline statement (no level)" in card["detail"]


@pytest.mark.parametrize("conditions", [
    [condition("277577000", SNOMED), condition("386033004", SNOMED)],   # SNOMED MGUS + neuropathy
    [condition("395692003", SNOMED), neuropathy()],                     # benign paraproteinaemia
])
def test_other_gammopathy_and_neuropathy_codes_count(cards_by_topic, conditions):
    assert {"PDN-1", "PDN-2", "PDN-3"} <= set(pdn_cards(cards_by_topic, conditions))


@pytest.mark.parametrize("conditions, why", [
    ([mgus()], "no neuropathy"),
    ([neuropathy()], "no gammopathy"),
    ([mgus(), neuropathy(), cidp()], "CIDP-like: PDN-4 instead"),
    ([mgus(), neuropathy(clinical="resolved")], "neuropathy resolved"),
    ([mgus(verification="refuted"), neuropathy()], "gammopathy refuted"),
])
def test_mgus_neuropathy_cards_need_both_diagnoses_and_no_cidp(cards_by_topic, conditions, why):
    assert not {"PDN-1", "PDN-2", "PDN-3"} & set(pdn_cards(cards_by_topic, conditions)), why


def test_a_refuted_cidp_does_not_block_the_mgus_neuropathy_cards(cards_by_topic):
    cards = pdn_cards(cards_by_topic, [mgus(), neuropathy(), cidp(verification="refuted")])
    assert {"PDN-1", "PDN-2", "PDN-3"} <= set(cards) and "PDN-4" not in cards


@pytest.mark.parametrize("conditions", [[cidp()], [mgus(), cidp(clinical="resolved")], [mgus(clinical="resolved"), cidp()]])
def test_pdn_4_needs_both_a_current_gammopathy_and_a_current_cidp(cards_by_topic, conditions):
    assert "PDN-4" not in pdn_cards(cards_by_topic, conditions)


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(verification="refuted"), dict(verification="entered-in-error")])
def test_a_gammopathy_that_is_not_a_current_diagnosis_gives_no_pdn_card(cards_by_topic, status):
    cards = pdn_cards(cards_by_topic, [mgus(**status), neuropathy(), cidp()])
    assert not [code for code in cards if code in CHAPTER]


def test_waldenstrom_macroglobulinaemia_is_not_mgus(cards_by_topic):
    # The chapter's recommendations are for MGUS ("non-malignant paraproteinaemias"); Waldenström's is a
    # lymphoma, yet it is in the monoclonal-gammopathy ValueSet, so the MGUS cards fire for it.
    cards = pdn_cards(cards_by_topic, [condition("C88.0", display="Waldenström macroglobulinemia"), neuropathy()])
    assert not {"PDN-1", "PDN-2", "PDN-3"} & set(cards)


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    order = medication_request("H02AB07", status="draft", id="pred-1")
    assert pdn_cards(cards_by_topic, [mgus(), neuropathy()], order=order) == {}  # no card at all


def test_a_monoclonal_gammopathy_without_a_neuropathy_is_a_use_the_guideline_does_not_cover(cards_by_topic):
    """The guideline covers a paraprotein only with the neuropathy it goes with. IVIG for an MGUS alone had no card
    but the monitoring line, which reads as if the use were covered: it gets the stewardship card, once."""
    cards = pdn_cards(cards_by_topic, [mgus()])
    assert not [code for code in cards if code.startswith("PDN")]
    detail = cards["SAFE-stewardship"]["detail"]
    assert detail.count("Diagnosis: Monoclonal gammopathy [D47.2]") == 1, detail
    assert "a monoclonal gammopathy counts only with the neuropathy it goes with" in detail
    with_neuropathy = pdn_cards(cards_by_topic, [mgus(), neuropathy()])
    assert "SAFE-stewardship" not in with_neuropathy and "PDN-disability" in with_neuropathy
