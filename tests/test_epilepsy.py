"""Drug-resistant epilepsy (rows EPI-1, good practice point for Rasmussen's encephalitis, 0.4 g/kg/day for 4-5 days;
EPI-2, West, Lennox-Gastaut and Landau-Kleffner syndromes: guideline statements without a level), through the
HTTP API."""

from __future__ import annotations

import pytest

from tests.card_checks import assert_follows_the_regimen, assert_states
from tests.fhir_data import ICD10CM, SNOMED, condition, corticosteroid, ivig_order
from tests.four_or_five_days import assert_28_g_for_3_days_departs, assert_offers_four_and_five_days

CHAPTER = ("EPI-1", "EPI-2-west-lgs", "EPI-2-lks")


def rasmussen(**kwargs) -> dict:
    return condition("230191005", SNOMED, "Rasmussen syndrome", **kwargs)


def west(**kwargs) -> dict:
    return condition("G40.822", display="Epileptic spasms, not intractable, without status epilepticus", **kwargs)


def lennox_gastaut(**kwargs) -> dict:
    return condition("G40.812", display="Lennox-Gastaut syndrome, not intractable, without status epilepticus", **kwargs)


def landau_kleffner(**kwargs) -> dict:
    return condition("230438007", SNOMED, "Acquired epileptic aphasia", **kwargs)


def epilepsy_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [rasmussen()], **data})


EVERY_RECOMMENDATION = [
    ("EPI-1", [rasmussen()], "Good practice point",
     "IVIG seems to have a favourable effect in RE and may be tried in selected patients that are refractory to other "
     "therapies (good practice point)."),
    ("EPI-2-west-lgs", [west()], "Guideline statement (no level)",
     "Approximately a hundred patients with West or Lennox-Gastaut syndromes have been treated with IVIG with widely "
     "varying results [177,178]."),
    ("EPI-2-lks", [landau_kleffner()], "Guideline statement (no level)",
     "Successful use of IVIG as initial monotherapy in LKS has been reported in case studies [179,180]"),
]


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("topic, conditions, level, sentence", EVERY_RECOMMENDATION, ids=[c[0] for c in EVERY_RECOMMENDATION])
def test_each_recommendation_fires_as_info_with_its_level_and_sentence(cards_by_topic, hook, topic, conditions, level, sentence):
    card = epilepsy_cards(cards_by_topic, hook=hook, conditions=conditions)[topic]
    assert_states(card, indicator="info", level=level, sentence=sentence, topic=topic)


@pytest.mark.parametrize("diagnosis, topic", [
    (rasmussen(), "EPI-1"),
    (west(), "EPI-2-west-lgs"),  # G40.822 is under G40.8, which the Landau-Kleffner ValueSet holds as an exact code only
    (lennox_gastaut(), "EPI-2-west-lgs"),
    (condition("28055006", SNOMED, "West syndrome"), "EPI-2-west-lgs"),
    (landau_kleffner(), "EPI-2-lks"),
    (condition("G40.8", ICD10CM, "Other epilepsy and recurrent seizures"), "EPI-2-lks"),
    (condition("G35.A", display="Relapsing-remitting multiple sclerosis"), None),
])
def test_each_diagnosis_brings_its_own_card_only(cards_by_topic, diagnosis, topic):
    cards = epilepsy_cards(cards_by_topic, conditions=[diagnosis])
    assert {code for code in cards if code in CHAPTER} == ({topic} if topic else set())


@pytest.mark.parametrize("diagnosis, topic", [(west(), "EPI-2-west-lgs"), (lennox_gastaut(), "EPI-2-west-lgs"),
                                              (landau_kleffner(), "EPI-2-lks")])
def test_guideline_statements_carry_no_level_and_no_suggestion(cards_by_topic, diagnosis, topic):
    card = epilepsy_cards(cards_by_topic, conditions=[diagnosis])[topic]
    assert "Guideline statement (no level)" in card["detail"]
    assert not any(level in card["detail"] for level in ("Level A", "Level B", "Level C", "Good practice point"))
    assert "suggestions" not in card and "selectionBehavior" not in card


# --- EPI-1 regimen: 0.4 g/kg/day for 4-5 days ----------------------------------------------------------


def test_with_70_kg_four_and_five_days_are_offered_as_alternatives(cards_by_topic):
    assert_offers_four_and_five_days(epilepsy_cards(cards_by_topic)["EPI-1"])


@pytest.mark.parametrize("days", [4, 5])
def test_a_draft_of_28_g_for_4_or_5_days_follows_the_regimen(cards_by_topic, days):
    card = epilepsy_cards(cards_by_topic, order=ivig_order(daily_g=28, days=days), hook="order-select")["EPI-1"]
    assert_follows_the_regimen(card)


def test_a_draft_of_28_g_for_3_days_departs_and_is_a_warning(cards_by_topic):
    card = epilepsy_cards(cards_by_topic, order=ivig_order(daily_g=28, days=3), hook="order-sign")["EPI-1"]
    assert_28_g_for_3_days_departs(card)


# --- negative -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(clinical="inactive"), dict(verification="refuted"),
                                    dict(verification="entered-in-error")])
def test_a_diagnosis_that_is_not_current_gives_no_card_of_the_chapter(cards_by_topic, status):
    conditions = [rasmussen(**status), west(**status), lennox_gastaut(**status), landau_kleffner(**status)]
    cards = epilepsy_cards(cards_by_topic, conditions=conditions)
    assert not [code for code in cards if code in CHAPTER]
    assert "SAFE-stewardship" in cards  # the order is still an IVIG order, for no diagnosis the guideline covers


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    prednisone_draft = corticosteroid() | {"status": "draft", "id": "pred-1"}
    assert epilepsy_cards(cards_by_topic, order=prednisone_draft, conditions=[rasmussen(), west(), landau_kleffner()]) == {}
