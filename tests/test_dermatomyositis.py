"""Dermatomyositis (rows DM-1..4), through the HTTP API."""

from __future__ import annotations

import pytest

from tests.card_checks import assert_offers_no_dose, assert_states, assert_warning_without_suggestions
from tests.fhir_data import SNOMED, condition, corticosteroid, ivig_order, medication_request

CHAPTER = ("DM-1", "DM-2", "DM-3", "DM-4")
ON_PREDNISONE = {"medications": [corticosteroid()]}  # ATC H02AB07, active
NO_CORTICOSTEROID = {}
DRAFTED_PREDNISONE = {"others": [medication_request("H02AB07", status="draft", id="pred-1")]}


def dm_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [condition("M33.10", display="Other dermatomyositis, organ involvement unspecified")], **data})


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("topic, data, indicator, level, sentence", [
    ("DM-1", ON_PREDNISONE, "info", "Level B",
     "IVIG is recommended as a second-line treatment in combination with prednisone for patients with DM who have "
     "not adequately responded to corticosteroids (level B)."),
    ("DM-2", ON_PREDNISONE, "info", "Level C",
     "IVIG is recommended, in combination with immunosuppressive medication, as a measure to lower the dose of "
     "steroids in patients with DM (level C)."),
    ("DM-3", NO_CORTICOSTEROID, "warning", "Good practice point",
     "IVIG is not recommended as monotherapy for DM (good practice point)."),
    ("DM-4", NO_CORTICOSTEROID, "warning", "Good practice point",  # stated with DM-3: severity decides
     "In severe, life-threatening DM IVIG can be considered as the first-line treatment together with other "
     "immunosuppressive therapy (good practice point)."),
])
def test_each_recommendation_fires_with_its_indicator_level_and_sentence(cards_by_topic, hook, topic, data, indicator, level, sentence):
    card = dm_cards(cards_by_topic, hook=hook, **data)[topic]
    assert_states(card, indicator=indicator, level=level, sentence=sentence)


@pytest.mark.parametrize("code, system", [
    ("M33.10", "http://hl7.org/fhir/sid/icd-10-cm"), ("M33.0", "http://hl7.org/fhir/sid/icd-10-cm"),  # juvenile DM
    ("396230008", SNOMED),
])
def test_ivig_alone_is_a_monotherapy_warning_without_suggestions(cards_by_topic, code, system):
    cards = dm_cards(cards_by_topic, conditions=[condition(code, system)])
    assert_warning_without_suggestions(cards["DM-3"], stating="against IVIG")
    assert "DM-1" not in cards and "DM-2" not in cards


@pytest.mark.parametrize("data", [ON_PREDNISONE, DRAFTED_PREDNISONE], ids=["active", "drafted"])
def test_on_prednisone_ivig_is_an_add_on_not_monotherapy(cards_by_topic, data):
    cards = dm_cards(cards_by_topic, **data)
    assert {"DM-1", "DM-2"} <= set(cards)
    assert "DM-3" not in cards and "DM-4" not in cards
    assert "H02AB07" in cards["DM-1"]["detail"]  # the corticosteroid it rests on is shown


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _by_reference(display: str) -> dict:
    """An order as Epic sends it: the product a reference to a Medication, named only by its display."""
    order = medication_request("", status="active")
    del order["medicationCodeableConcept"]
    return order | {"medicationReference": {"reference": "Medication/erx-12345", "display": display}}


@pytest.mark.parametrize("order", [
    medication_request("312617", RXNORM, "predniSONE 20 MG Oral Tablet"),           # an RxNorm product (SCD) code
    medication_request("", text="methylPREDNISolone sodium succinate 40 mg IV"),    # words only
    _by_reference("PREDNISONE 5 MG PO TABS"),
], ids=["rxnorm-product", "text-only", "medication-reference"])
def test_a_corticosteroid_named_only_in_words_counts(cards_by_topic, order):
    cards = dm_cards(cards_by_topic, medications=[order])
    assert {"DM-1", "DM-2"} <= set(cards) and "DM-3" not in cards
    concept = order.get("medicationReference") or order["medicationCodeableConcept"]
    name = concept.get("display") or concept.get("text") or concept["coding"][0]["display"]
    assert f"Medication: {name}" in cards["DM-1"]["detail"]  # the order it rests on is shown, by its name


@pytest.mark.parametrize("display", ["hydrocortisone 1 % topical cream", "prednisoLONE acetate 1 % ophthalmic suspension",
                                     "dexamethasone 0.1 % eye drops"])
def test_a_topical_corticosteroid_is_not_systemic_treatment(cards_by_topic, display):
    cards = dm_cards(cards_by_topic, medications=[medication_request("", text=display)])
    assert "DM-3" in cards and "DM-1" not in cards


@pytest.mark.parametrize("status", ["completed", "stopped"])
def test_a_past_corticosteroid_course_does_not_make_it_combination_therapy(cards_by_topic, status):
    cards = dm_cards(cards_by_topic, medications=[corticosteroid(status=status)])
    assert "DM-3" in cards and "DM-1" not in cards and "DM-2" not in cards


@pytest.mark.parametrize("data", [NO_CORTICOSTEROID, ON_PREDNISONE], ids=["alone", "on-prednisone"])
@pytest.mark.parametrize("order", [None, ivig_order(daily_g=28, days=5)], ids=["undosed", "dosed"])
def test_no_dose_is_stated_so_none_is_offered(cards_by_topic, data, order):
    cards = dm_cards(cards_by_topic, order=order, **data)
    shown = [topic for topic in cards if topic in CHAPTER]
    assert len(shown) == 2
    for topic in shown:
        assert_offers_no_dose(cards[topic])


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(verification="refuted")])
@pytest.mark.parametrize("data", [NO_CORTICOSTEROID, ON_PREDNISONE], ids=["alone", "on-prednisone"])
def test_a_resolved_or_refuted_diagnosis_is_not_an_indication(cards_by_topic, status, data):
    cards = dm_cards(cards_by_topic, conditions=[condition("M33.10", **status)], **data)
    assert not [code for code in cards if code in CHAPTER]


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    assert dm_cards(cards_by_topic, order=corticosteroid() | {"status": "draft", "id": "pred-1"}) == {}


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("data", [ON_PREDNISONE, NO_CORTICOSTEROID], ids=["on prednisone", "no corticosteroid"])
def test_dermatomyositis_beside_inclusion_body_myositis_gets_the_ibm_warning_alone(cards_by_topic, hook, data):
    """'IVIG is recommended as a second-line treatment ... for patients with DM (level B)' beside 'IVIG can not be
    recommended for the treatment of sporadic IBM (level A)' contradicted each other. The recommendation against, at the
    higher level, speaks: IVIG given for an IBM is given without benefit, and its card names the DM code it did not use."""
    both = [condition("M33.10", display="Other dermatomyositis"), condition("G72.41", display="Inclusion body myositis")]
    cards = dm_cards(cards_by_topic, conditions=both, hook=hook, **data)
    assert "IBM-1" in cards and not set(CHAPTER) & set(cards), sorted(cards)
    assert cards["IBM-1"]["indicator"] == "warning" and "dermatomyositis or polymyositis diagnosis" in cards["IBM-1"]["detail"]
