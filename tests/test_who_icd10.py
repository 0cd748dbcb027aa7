"""A European guideline that European records can trigger: diagnoses coded in WHO ICD-10 (or a national
modification of it) reach the recommendation, and where the WHO code is broader than the disease the card says
which code it rests on and what else that code covers."""

from __future__ import annotations

import pytest

from tests.fhir_data import condition

WHO = "http://hl7.org/fhir/sid/icd-10"


@pytest.mark.parametrize("code, topic", [
    ("G61.0", "GBS-1"), ("G61.8", "CIDP-2"), ("G61.8", "MMN-1"), ("G72.4", "IBM-1"), ("G25.8", "SPS-1"),
    ("G73.1", "PNS-1"), ("G36.0", "CNS-1-nmo"), ("M33.1", "DM-3"), ("M33.2", "PM-1"), ("G14", "PPS-1"),
    ("G70.0", "MG-1"), ("G35", "MS-5"),
])
def test_a_who_icd_10_diagnosis_reaches_its_recommendation(cards_by_topic, code, topic):
    assert topic in cards_by_topic(conditions=[condition(code, WHO)])


@pytest.mark.parametrize("code, topic", [("G61.8", "CIDP-2"), ("G61.8", "MMN-1"), ("G72.4", "IBM-1"), ("G25.8", "SPS-1")])
def test_a_broader_who_code_is_named_on_the_card_with_what_else_it_covers(cards_by_topic, code, topic):
    detail = cards_by_topic(conditions=[condition(code, WHO)])[topic]["detail"]
    assert f"Coded only as {code} " in detail and "also covers" in detail
