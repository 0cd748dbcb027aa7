"""Which orders are IVIG: only they get cards; everything else is silence."""

from __future__ import annotations

import pytest

from tests.fhir_data import ATC, gbs, hook_request, ivig_order, medication_request, prefetch, weight

NDC = "http://hl7.org/fhir/sid/ndc"
DATA = prefetch(conditions=[gbs()], weights=[weight(70)])


@pytest.mark.parametrize("order", [
    ivig_order(),
    ivig_order(coding=(NDC, "44206-0439-10")),      # Privigen package NDC, 5-4-2
    ivig_order(coding=(NDC, "00944270002")),        # Gammagard Liquid as 11 digits
    ivig_order(coding=("urn:local", "X1"), text="Immune globulin intravenous (human) 10%"),
    ivig_order(coding=("urn:local", "X1"), text="IVIG"),
])
def test_ivig_is_recognised_by_valueset_or_text(cds, order):
    assert cds(hook_request([order], prefetch=DATA))


@pytest.mark.parametrize("order", [
    ivig_order(coding=(ATC, "J06BA01")),                                      # subcutaneous
    ivig_order(coding=(ATC, "J06BA")),                                        # the parent group is not IVIG
    ivig_order(coding=("urn:local", "X2"), text="Immune globulin subcutaneous (human) 20%"),
    ivig_order(coding=("urn:local", "X3"), text="Immune globulin"),           # route unknown
    medication_request("H02AB04", status="draft", id="mp"),                  # methylprednisolone
])
def test_other_orders_get_no_cards(cds, order):
    assert cds(hook_request([order], prefetch=DATA)) == []


def test_an_unrelated_order_needs_no_patient_data(cds):
    """No prefetch and no fhirServer: still a plain empty answer, not a 412, for an order we do not speak about."""
    assert cds(hook_request([medication_request("H02AB04", status="draft", id="mp")])) == []


def test_order_select_speaks_only_about_the_selected_order(cds):
    other = medication_request("H02AB04", status="draft", id="mp")
    assert cds(hook_request([other, ivig_order()], prefetch=DATA, selections=["MedicationRequest/mp"])) == []
    assert cds(hook_request([other, ivig_order()], prefetch=DATA, selections=["MedicationRequest/ivig-1"]))


def test_order_sign_looks_at_every_draft(cds):
    other = medication_request("H02AB04", status="draft", id="mp")
    assert cds(hook_request([other, ivig_order()], hook="order-sign", prefetch=DATA))


def test_sandbox_style_payload_still_gets_an_answer(cds):
    """The CDS Hooks Sandbox sends a Bundle without type, category as an object, a MedicationRequest without medication."""
    odd = {"resourceType": "MedicationRequest", "id": "rx-1", "status": "draft", "category": {"text": "outpatient"}}
    body = hook_request([odd], prefetch=DATA)
    del body["context"]["draftOrders"]["type"]
    assert cds(body) == []


def test_ehr_text_in_a_card_cannot_inject_html(cds):
    """The CDS Hooks Sandbox renders card detail as Markdown with raw HTML enabled."""
    from tests.fhir_data import condition

    gbs_with_markup = condition("G61.0", display="<img src=x onerror=alert(1)>GBS")
    (card, *_) = [c for c in cds(hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs_with_markup], weights=[weight(70)])))
                  if c["source"]["topic"]["code"] == "GBS-1"]
    assert "<img" not in card["detail"] and "&lt;img src=x onerror=alert(1)&gt;GBS" in card["detail"]
