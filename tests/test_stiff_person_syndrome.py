"""Stiff-person syndrome (row SPS-1, level A, 2 g/kg in 2-5 days), through the HTTP API."""

from __future__ import annotations

import pytest

from tests.card_checks import assert_follows_the_regimen, assert_states
from tests.fhir_data import SNOMED, condition, corticosteroid, ivig_order
from tests.range_regimen import (
    DRAFTS_WITHIN_THE_RANGE,
    assert_60_g_for_5_days_departs,
    assert_details_both_ends,
    assert_no_absolute_dose_without_weight,
    assert_offers_both_ends,
)

SENTENCE = ("In patients with SPS incompletely responding to diazepam and/or baclofen and with significant disability "
            "requiring a cane or a walker due to truncal stiffness and frequent falls, the recommendation is to use IVIG "
            "(2 g/kg in 2–5 days) (level A based on class I evidence).")


def sps(**kwargs) -> dict:
    return condition("G25.82", display="Stiff-man syndrome", **kwargs)


def sps_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [sps()], **data})


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("diagnosis", [sps(), condition("5217008", SNOMED, "Stiff-person syndrome")], ids=["ICD-10-CM", "SNOMED"])
def test_the_recommendation_fires_as_level_a_info_with_its_sentence(cards_by_topic, hook, diagnosis):
    card = sps_cards(cards_by_topic, hook=hook, conditions=[diagnosis])["SPS-1"]
    assert_states(card, indicator="info", level="Level A", sentence=SENTENCE, topic="SPS-1")


def test_without_stiff_person_syndrome_there_is_no_card(cards_by_topic):
    assert "SPS-1" not in sps_cards(cards_by_topic, conditions=[condition("G35.A", display="Relapsing-remitting MS")])


# --- 2 g/kg in 2-5 days ---------------------------------------------------------------------------------


def test_with_70_kg_the_two_ends_of_the_range_are_offered_as_alternatives(cards_by_topic):
    card = sps_cards(cards_by_topic)["SPS-1"]
    assert_offers_both_ends(card)  # 70 g/day x 2 days, 28 g/day x 5 days
    assert_details_both_ends(card)


@pytest.mark.parametrize("daily_g, days", DRAFTS_WITHIN_THE_RANGE)  # includes 35 g/day x 4 days
def test_a_draft_within_the_range_follows_the_regimen(cards_by_topic, daily_g, days):
    card = sps_cards(cards_by_topic, order=ivig_order(daily_g=daily_g, days=days), hook="order-select")["SPS-1"]
    assert_follows_the_regimen(card)


def test_a_draft_of_60_g_for_5_days_departs_in_one_critical_card(cards_by_topic):
    card = sps_cards(cards_by_topic, order=ivig_order(daily_g=60, days=5), hook="order-sign")["SPS-1"]
    assert_60_g_for_5_days_departs(card)


def test_without_a_weight_no_absolute_dose_is_offered(cards_by_topic):
    assert_no_absolute_dose_without_weight(sps_cards(cards_by_topic, weights=[])["SPS-1"])


# --- negative -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(clinical="inactive"), dict(verification="refuted"),
                                    dict(verification="entered-in-error")])
def test_a_diagnosis_that_is_not_current_gives_no_sps_card(cards_by_topic, status):
    cards = sps_cards(cards_by_topic, conditions=[sps(**status)])
    assert "SPS-1" not in cards
    assert "SAFE-stewardship" in cards  # the order is still an IVIG order, for no diagnosis the guideline covers


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    prednisone_draft = corticosteroid() | {"status": "draft", "id": "pred-1"}
    assert sps_cards(cards_by_topic, order=prednisone_draft) == {}
