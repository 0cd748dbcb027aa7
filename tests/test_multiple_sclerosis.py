"""Multiple sclerosis (rows MS-1..6), through the HTTP API. The guideline recommends no IVIG dose in MS."""

from __future__ import annotations

import re

import pytest

from tests.card_checks import assert_states, assert_warning_without_suggestions, stated_topics
from tests.fhir_data import SNOMED, condition, corticosteroid, ivig_order, medication_request

CHAPTER = ("MS-1", "MS-2", "MS-3", "MS-4", "MS-5", "MS-6")


def rrms(**kwargs) -> dict:
    return condition("G35.A", display="Relapsing-remitting multiple sclerosis", **kwargs)


def spms(**kwargs) -> dict:
    return condition("G35.C0", display="Secondary progressive multiple sclerosis, unspecified", **kwargs)


def ppms(**kwargs) -> dict:
    return condition("G35.B0", display="Primary progressive multiple sclerosis, unspecified", **kwargs)


def ms_unspecified(**kwargs) -> dict:
    return condition("G35.D", display="Multiple sclerosis, unspecified", **kwargs)


def cis(**kwargs) -> dict:
    return condition("G37.9", display="Demyelinating disease of central nervous system, unspecified", **kwargs)


def pregnant() -> dict:
    return condition("Z33.1", display="Pregnant state, incidental")


def postpartum() -> dict:
    return condition("Z39.2", display="Encounter for routine postpartum follow-up")


def methylprednisolone(status: str = "active") -> dict:
    return corticosteroid("H02AB04", "methylprednisolone", status=status)


def ms_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [rrms()], **data})


RRMS_SENTENCE = ("However, IVIG could still be considered as a second or third-line therapy in RRMS if conventional "
                 "immunomodulatory therapies are not tolerated because of side effects or concomitant diseases (level B), "
                 "and in particular in pregnancy where other therapies may not be used (good clinical practice point).")
ADD_ON_SENTENCE = ("IVIG does not seem to have any valuable effect as add-on therapy to methylprednisolone for acute "
                   "exacerbations (level B) and cannot be recommended as treatment for chronic symptoms in MS (level A).")

EVERY_RECOMMENDATION = [
    ("MS-1", {}, "warning", "Level B", RRMS_SENTENCE),  # stated with MS-5: the purpose decides
    ("MS-2", {"conditions": [rrms(), pregnant()]}, "warning", "Good practice point", RRMS_SENTENCE),
    ("MS-3", {"conditions": [spms()]}, "warning", "Level A",
     "IVIG cannot be recommended for treatment in secondary progressive MS (level A)."),
    ("MS-4", {"medications": [methylprednisolone()]}, "warning", "Level B", ADD_ON_SENTENCE),
    ("MS-5", {}, "warning", "Level A", ADD_ON_SENTENCE),
    ("MS-6", {"conditions": [ppms()]}, "warning", "No recommendation",  # stated with MS-5: the purpose decides
     "In clinically isolated syndromes and in primary progressive MS there is not sufficient evidence to make any "
     "recommendations."),
]


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("topic, data, indicator, level, sentence", EVERY_RECOMMENDATION, ids=[c[0] for c in EVERY_RECOMMENDATION])
def test_each_recommendation_fires_with_its_indicator_level_and_sentence(cards_by_topic, hook, topic, data, indicator, level, sentence):
    card = ms_cards(cards_by_topic, hook=hook, **data)[topic]
    assert_states(card, indicator=indicator, level=level, sentence=sentence, topic=topic)


# --- against (MS-3, MS-4, MS-5) and undecided (MS-6) ----------------------------------------------------


@pytest.mark.parametrize("topic, data", [
    ("MS-3", {"conditions": [spms()]}),
    ("MS-3", {"conditions": [condition("425500002", SNOMED, "Secondary progressive multiple sclerosis")]}),
    ("MS-4", {"medications": [methylprednisolone()]}),
    ("MS-4", {"others": [medication_request("H02AB04", display="methylprednisolone", status="draft", id="mp-1")]}),
    ("MS-5", {}),
    ("MS-5", {"conditions": [ms_unspecified()]}),
])
def test_against_cards_are_warnings_without_suggestions_that_can_be_overridden(cards_by_topic, topic, data):
    card = ms_cards(cards_by_topic, **data)[topic]
    assert_warning_without_suggestions(card, stating="against IVIG")
    assert "selectionBehavior" not in card


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_secondary_progressive_ms_gets_one_against_card_not_two(cards_by_topic, hook):
    """MS-3 (not in SPMS, Level A) and MS-5 (not for chronic symptoms, Level A) would both warn against the same order."""
    cards = ms_cards(cards_by_topic, conditions=[spms()], hook=hook)
    assert [code for code in cards if code in CHAPTER] == ["MS-3"]


def test_a_clinically_isolated_syndrome_gets_no_recommendation(cards_by_topic):
    card = ms_cards(cards_by_topic, conditions=[cis()])["MS-6"]
    assert card["indicator"] == "info" and "No recommendation" in card["detail"]
    assert "suggestions" not in card


@pytest.mark.parametrize("conditions", [[ppms()], [rrms(), ppms()]], ids=["PPMS", "RRMS code kept beside PPMS"])
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_primary_progressive_ms_gets_one_card_saying_the_purpose_decides(cards_by_topic, conditions, hook):
    """'In ... primary progressive MS there is not sufficient evidence to make any recommendations' beside 'cannot be
    recommended as treatment for chronic symptoms in MS (level A)': two cards, one 'not recommended, Level A' and one
    'no recommendation', read as a contradiction. Both hold, for different purposes of the order, which the record does
    not say: one card (MS-purpose) states both, the warning first."""
    cards = ms_cards(cards_by_topic, conditions=conditions, hook=hook)
    shown = {id(card): card for code, card in cards.items() if code in CHAPTER}
    assert len(shown) == 1
    card = cards["MS-5"]
    assert card["source"]["topic"]["code"] == "MS-purpose" and stated_topics(card) == ["MS-5", "MS-6"]
    assert card["indicator"] == "warning" and "Level A" in card["detail"] and "No recommendation" in card["detail"]
    assert "suggestions" not in card
    # the decision is read first, each recommendation in one line; the guideline's sentences come after
    detail = card["detail"]
    assert detail.startswith("**The purpose of the order is not coded")
    assert detail.index("**No recommendation:**") < detail.index("**The guideline's sentences**") < detail.index(
        "> In clinically isolated syndromes and in primary progressive MS")


def test_rrms_gets_no_undecided_card(cards_by_topic):
    assert "MS-6" not in ms_cards(cards_by_topic)


# --- no dose: the guideline recommends none in MS ---------------------------------------------------------


@pytest.mark.parametrize("order", [ivig_order(), ivig_order(daily_g=28, days=5)], ids=["undosed draft", "dosed draft"])
@pytest.mark.parametrize("conditions", [[rrms(), pregnant()], [spms()], [ppms(), cis()]], ids=["RRMS pregnant", "SPMS", "PPMS CIS"])
def test_ms_cards_never_suggest_or_state_an_absolute_daily_dose(cards_by_topic, order, conditions):
    cards = ms_cards(cards_by_topic, order=order, hook="order-sign", conditions=conditions,
                     medications=[methylprednisolone()])
    ms = [cards[code] for code in CHAPTER if code in cards]
    assert len(ms) >= 2
    for card in ms:
        assert "suggestions" not in card, card["source"]["topic"]["code"]
        assert not re.search(r"\d g/day", card["detail"]), card["detail"]


def test_the_rrms_card_states_what_decides_and_gives_no_dose(cards_by_topic):
    """RRMS alone: second or third line when conventional therapy is not tolerated (MS-1), or not for chronic
    symptoms (MS-5); the purpose decides, and the guideline recommends no dose for either."""
    card = ms_cards(cards_by_topic)["MS-1"]
    assert card["source"]["topic"]["code"] == "MS-purpose" and "The purpose of the order is not coded" in card["detail"]
    assert card["extension"]["org.ivig-cds.states"] == ["MS-1", "MS-5"]
    assert "suggestions" not in card and not re.search(r"\d g/day", card["detail"])


# --- patient facts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("diagnosis, fires", [
    (rrms(), True),
    (condition("426373005", SNOMED, "Relapsing remitting multiple sclerosis"), True),
    (spms(), False),
    (ms_unspecified(), False),  # G35.D carries no disease course
])
def test_the_second_line_card_needs_relapsing_remitting_ms(cards_by_topic, diagnosis, fires):
    assert ("MS-1" in ms_cards(cards_by_topic, conditions=[diagnosis])) is fires


@pytest.mark.parametrize("conditions, fires", [
    ([rrms(), pregnant()], True),
    ([ms_unspecified(), pregnant()], True),
    ([spms(), pregnant()], False),
    ([ppms(), pregnant()], False),
    ([rrms()], False),
], ids=["RRMS pregnant", "unspecified MS pregnant", "SPMS pregnant", "PPMS pregnant", "RRMS not pregnant"])
def test_the_pregnancy_card_needs_a_pregnancy_and_a_course_that_is_not_progressive(cards_by_topic, conditions, fires):
    assert ("MS-2" in ms_cards(cards_by_topic, conditions=conditions)) is fires


def test_a_post_partum_code_brings_the_pregnancy_card(cards_by_topic):
    """The abstract recommends IVIG in relapses 'during pregnancy or post-partum period', and the body reports a
    reduced relapse rate after childbirth: MS-2 fires on a pregnancy or a post-partum state (issue 10)."""
    cards = ms_cards(cards_by_topic, conditions=[rrms(), postpartum()])
    assert "MS-2" in cards and "MS-1" in cards


@pytest.mark.parametrize("medications", [
    [],                                              # no corticosteroid
    [corticosteroid()],                              # prednisone is not methylprednisolone
    [methylprednisolone(status="completed")],        # a past course
    [methylprednisolone(status="stopped")],
], ids=["none", "prednisone", "completed", "stopped"])
def test_no_current_methylprednisolone_no_add_on_card(cards_by_topic, medications):
    assert "MS-4" not in ms_cards(cards_by_topic, medications=medications)


# --- negative -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(clinical="inactive"), dict(verification="refuted"),
                                    dict(verification="entered-in-error")])
def test_an_ms_diagnosis_that_is_not_current_gives_no_ms_card(cards_by_topic, status):
    conditions = [rrms(**status), spms(**status), ppms(**status), ms_unspecified(**status), cis(**status), pregnant()]
    cards = ms_cards(cards_by_topic, conditions=conditions, medications=[methylprednisolone()])
    assert not [code for code in cards if code in CHAPTER]
    assert "SAFE-stewardship" in cards  # the order is still an IVIG order, for no diagnosis the guideline covers


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    methylprednisolone_draft = methylprednisolone() | {"status": "draft", "id": "mp-1"}
    assert ms_cards(cards_by_topic, order=methylprednisolone_draft, conditions=[rrms(), spms(), pregnant()]) == {}


def test_a_relapsing_remitting_code_left_beside_a_progressive_one_does_not_bring_the_second_line_card(cards_by_topic):
    """An MS that turned secondary progressive keeps its old G35.A on the problem list: MS-1 ('IVIG as second or
    third line', Level B) beside MS-3 ('not recommended', Level A) contradicted each other. The progressive course
    is the patient's now."""
    cards = cards_by_topic(conditions=[rrms(), spms()])
    assert "MS-3" in cards and "MS-1" not in cards, sorted(cards)
    assert "MS-1" not in cards_by_topic(conditions=[rrms(), ppms()])


def test_a_clinically_isolated_syndrome_left_on_record_once_ms_is_diagnosed_is_not_a_cis(cards_by_topic):
    """A CIS is the first episode of what became MS: 'no recommendation for CIS' beside the MS cards is noise."""
    cis = condition("G37.9", display="Demyelinating disease of central nervous system, unspecified")
    assert "MS-6" not in cards_by_topic(conditions=[cis, rrms()])
    assert "MS-6" in cards_by_topic(conditions=[cis])
