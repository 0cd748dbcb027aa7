"""Other demyelinating diseases of the CNS: neuromyelitis optica, Baló's concentric sclerosis (row CNS-1, no
recommendation) and ADEM (row ADEM-1, good practice point, 0.4 g/kg/day for 4-5 days), through the HTTP API."""

from __future__ import annotations

import pytest

from tests.card_checks import assert_follows_the_regimen, assert_states
from tests.fhir_data import SNOMED, condition, corticosteroid, ivig_order, suggested_courses
from tests.four_or_five_days import assert_28_g_for_3_days_departs, assert_offers_four_and_five_days

CHAPTER = ("CNS-1-nmo", "CNS-1-balo", "ADEM-1")


def adem(**kwargs) -> dict:
    return condition("83942000", SNOMED, "Acute disseminated encephalomyelitis", **kwargs)


def nmo(**kwargs) -> dict:
    return condition("G36.0", display="Neuromyelitis optica [Devic]", **kwargs)


def balo(**kwargs) -> dict:
    return condition("G37.5", display="Concentric sclerosis [Balo] of central nervous system", **kwargs)


def cns_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [adem()], **data})


EVERY_RECOMMENDATION = [
    ("CNS-1-nmo", [nmo()], "No recommendation",
     "There is only one case type study suggesting that monthly IVIG was associated with cessation of relapses "
     "(class IV evidence) [142]."),
    ("CNS-1-balo", [balo()], "No recommendation",
     "There is a case report suggesting that IVIG (0.4 g/kg/daily for 5 days) and interferon-beta-1a given post-partum "
     "may result partial neurological improvement (class IV evidence) [143]."),
    ("ADEM-1", [adem()], "Good practice point",
     "IVIG may have a favourable effect in the treatment of ADEM and therefore it should be tried (0.4 g/kg/day for "
     "4–5 consecutive days) in patients with lack of response to high-dose steroids (good practice point)."),
]


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("topic, conditions, level, sentence", EVERY_RECOMMENDATION, ids=[c[0] for c in EVERY_RECOMMENDATION])
def test_each_recommendation_fires_as_info_with_its_level_and_sentence(cards_by_topic, hook, topic, conditions, level, sentence):
    card = cns_cards(cards_by_topic, hook=hook, conditions=conditions)[topic]
    assert_states(card, indicator="info", level=level, sentence=sentence, topic=topic)


@pytest.mark.parametrize("diagnosis, topic", [
    (nmo(), "CNS-1-nmo"),
    (condition("25044007", SNOMED, "Neuromyelitis optica"), "CNS-1-nmo"),
    (balo(), "CNS-1-balo"),
    (adem(), "ADEM-1"),
    (condition("G04.01", display="Postinfectious acute disseminated encephalitis and encephalomyelitis"), "ADEM-1"),
    (condition("G35.A", display="Relapsing-remitting multiple sclerosis"), None),
])
def test_each_diagnosis_brings_its_own_card_only(cards_by_topic, diagnosis, topic):
    cards = cns_cards(cards_by_topic, conditions=[diagnosis])
    assert {code for code in cards if code in CHAPTER} == ({topic} if topic else set())


# --- no recommendation: neuromyelitis optica and Baló ---------------------------------------------------


@pytest.mark.parametrize("diagnosis, topic", [(nmo(), "CNS-1-nmo"), (balo(), "CNS-1-balo")])
def test_no_recommendation_cards_carry_no_suggestion(cards_by_topic, diagnosis, topic):
    card = cns_cards(cards_by_topic, conditions=[diagnosis])[topic]
    assert "No recommendation" in card["detail"]
    assert "suggestions" not in card and "selectionBehavior" not in card


def test_balo_quotes_the_case_report_dose_without_suggesting_it(cards_by_topic):
    card = cns_cards(cards_by_topic, conditions=[balo()])["CNS-1-balo"]
    assert "IVIG (0.4 g/kg/daily for 5 days)" in card["detail"]
    assert "28 g/day" not in card["detail"] and suggested_courses(card) == []


# --- ADEM-1 regimen: 0.4 g/kg/day for 4-5 days ---------------------------------------------------------


def test_with_70_kg_four_and_five_days_are_offered_as_alternatives(cards_by_topic):
    assert_offers_four_and_five_days(cns_cards(cards_by_topic)["ADEM-1"])


@pytest.mark.parametrize("days", [4, 5])
def test_a_draft_of_28_g_for_4_or_5_days_follows_the_regimen(cards_by_topic, days):
    card = cns_cards(cards_by_topic, order=ivig_order(daily_g=28, days=days), hook="order-select")["ADEM-1"]
    assert_follows_the_regimen(card)


def test_a_draft_of_28_g_for_3_days_departs_and_is_a_warning(cards_by_topic):
    card = cns_cards(cards_by_topic, order=ivig_order(daily_g=28, days=3), hook="order-sign")["ADEM-1"]
    assert_28_g_for_3_days_departs(card)


# --- negative -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(clinical="inactive"), dict(verification="refuted"),
                                    dict(verification="entered-in-error")])
def test_a_diagnosis_that_is_not_current_gives_no_card_of_the_chapter(cards_by_topic, status):
    cards = cns_cards(cards_by_topic, conditions=[adem(**status), nmo(**status), balo(**status)])
    assert not [code for code in cards if code in CHAPTER]
    assert "SAFE-stewardship" in cards  # the order is still an IVIG order, for no diagnosis the guideline covers


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    methylprednisolone_draft = corticosteroid("H02AB04", "methylprednisolone") | {"status": "draft", "id": "mp-1"}
    assert cns_cards(cards_by_topic, order=methylprednisolone_draft, conditions=[adem(), nmo(), balo()]) == {}


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("ms_code", ["G35.A", "G35.D", "G35.C0", "G35.B0"], ids=["RRMS", "MS", "SPMS", "PPMS"])
def test_an_ms_code_beside_neuromyelitis_optica_brings_no_ms_card(cards_by_topic, hook, ms_code):
    """NMO was long taken for a form of MS, and the MS code often stays on the problem list. The MS recommendations rest
    on MS trials ('IVIG could still be considered as a second or third-line therapy in RRMS ...') and beside NMO's 'only
    one case type study' they contradicted it ('the purpose decides' beside 'no recommendation'): NMO, the more specific
    diagnosis, speaks, and its card says the MS code was not used."""
    cards = cns_cards(cards_by_topic, conditions=[nmo(), condition(ms_code)], hook=hook)
    assert not [code for code in cards if code.startswith("MS-")], sorted(cards)
    if hook == "order-select":
        assert "MS diagnosis on record beside NMO" in cards["CNS-1-nmo"]["detail"]
