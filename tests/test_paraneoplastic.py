"""Paraneoplastic syndromes (rows PNS-1, PNS-2), through the HTTP API."""

from __future__ import annotations

import pytest

from tests.card_checks import assert_offers_no_dose, assert_states
from tests.fhir_data import SNOMED, condition, corticosteroid, ivig_order

CHAPTER = ("PNS-1", "PNS-2")
PNS_1 = ("Intravenous immunoglobulin therapy may be tried in paraneoplastic LEMS and opsoclonus-ataxia especially in "
         "paediatric neuroblastoma patients (good practice point).")
PNS_2 = ("No clear recommendations of the effect of IVIG in paraneoplastic neuromyotonia, cerebellar degeneration, limbic "
         "encephalitis or sensory neuropathy can be made due to lack of data.")


def pns_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [condition("G73.1", display="Lambert-Eaton syndrome in neoplastic disease")], **data})


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
@pytest.mark.parametrize("topic, code, level, sentence", [
    ("PNS-1", "G73.1", "Good practice point", PNS_1),
    ("PNS-2", "G13.0", "No recommendation", PNS_2),
])
def test_each_recommendation_fires_as_info_with_its_level_and_sentence(cards_by_topic, hook, topic, code, level, sentence):
    card = pns_cards(cards_by_topic, hook=hook, conditions=[condition(code)])[topic]
    assert_states(card, indicator="info", level=level, sentence=sentence)


@pytest.mark.parametrize("code, system", [("G73.1", "http://hl7.org/fhir/sid/icd-10-cm"), ("608874000", SNOMED)])
def test_paraneoplastic_lems_gets_pns_1_only(cards_by_topic, code, system):
    cards = pns_cards(cards_by_topic, conditions=[condition(code, system)])
    assert "PNS-1" in cards and "PNS-2" not in cards


PNS_LEMS = ("The IVIG response regarding improvement of muscle strength does probably not differ in paraneoplastic and "
            "non-paraneoplastic LEMS.")


@pytest.mark.parametrize("code", ["G70.80", "G70.81"])
def test_lems_without_a_neoplasm_gets_the_guideline_statement_not_the_stewardship_card(cards_by_topic, code):
    """The recommendation (PNS-1) is for paraneoplastic LEMS; for LEMS without a neoplasm the guideline says only that
    the response probably does not differ: one info card says so, and the indication is not called uncovered."""
    cards = pns_cards(cards_by_topic, conditions=[condition(code, display="Lambert-Eaton syndrome")])
    assert not [c for c in cards if c in CHAPTER] and "SAFE-stewardship" not in cards
    assert_states(cards["PNS-lems"], indicator="info", level="Guideline statement (no level)", sentence=PNS_LEMS)
    assert_offers_no_dose(cards["PNS-lems"])
    assert "PNS-lems" not in pns_cards(cards_by_topic)  # paraneoplastic LEMS: PNS-1 alone


@pytest.mark.parametrize("code", [
    "G13.0",   # paraneoplastic neuromyopathy and neuropathy (sensory neuronopathy)
    "G13.1",   # limbic encephalitis
    "G32.81",  # cerebellar degeneration
    "G71.19",  # neuromyotonia
])
def test_each_no_recommendation_syndrome_gets_pns_2_and_not_pns_1(cards_by_topic, code):
    cards = pns_cards(cards_by_topic, conditions=[condition(code)])
    assert "PNS-2" in cards and "PNS-1" not in cards
    assert "No recommendation" in cards["PNS-2"]["detail"]


@pytest.mark.parametrize("code", ["G73.1", "G13.0"])
def test_no_dose_is_stated_so_none_is_offered(cards_by_topic, code):
    # The guideline states no dose for paraneoplastic syndromes, even for a dosed draft and a known weight.
    for order, hook in ((None, "order-select"), (ivig_order(daily_g=28, days=5), "order-sign")):
        cards = pns_cards(cards_by_topic, conditions=[condition(code)], order=order, hook=hook)
        for topic in set(cards) & set(CHAPTER):
            assert_offers_no_dose(cards[topic])


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(verification="refuted")])
def test_a_resolved_or_refuted_diagnosis_is_not_an_indication(cards_by_topic, status):
    cards = pns_cards(cards_by_topic, conditions=[condition("G73.1", **status), condition("G13.0", **status)])
    assert not [code for code in cards if code in CHAPTER]


def test_an_order_that_is_not_ivig_gets_no_card(cards_by_topic):
    assert pns_cards(cards_by_topic, order=corticosteroid() | {"status": "draft", "id": "pred-1"}) == {}


@pytest.mark.parametrize("cancer, paraneoplastic", [
    (condition("C34.91", display="Malignant neoplasm of unspecified part of right bronchus or lung"), True),  # SCLC
    (condition("C34.1", "http://hl7.org/fhir/sid/icd-10", "Upper lobe, bronchus or lung"), True),
    (condition("C34.91", display="lung cancer", clinical="resolved"), False),  # no cancer on record now
    (condition("D15.0", display="Benign neoplasm of thymus"), False),         # benign: no malignancy
], ids=["icd-10-cm-lung", "who-lung", "resolved", "benign"])
def test_a_lems_beside_a_cancer_on_record_is_paraneoplastic(cards_by_topic, cancer, paraneoplastic):
    """Records often carry LEMS as G70.80 with the small-cell lung cancer as its own diagnosis, not G73.1: that LEMS
    has an underlying malignancy, and the guideline's GPP (PNS-1) is for it, not the 'not coded as paraneoplastic'
    statement. A cancer alone is no indication: it still gets the stewardship card."""
    lems = condition("G70.80", display="Lambert-Eaton syndrome, unspecified")
    cards = pns_cards(cards_by_topic, conditions=[lems, cancer])
    assert ("PNS-1" in cards) is paraneoplastic and ("PNS-lems" in cards) is not paraneoplastic, sorted(cards)
    if paraneoplastic:
        assert "Diagnosis: " + cancer["code"]["coding"][0]["display"] in cards["PNS-1"]["detail"]
    assert "SAFE-stewardship" in pns_cards(cards_by_topic, conditions=[cancer])
