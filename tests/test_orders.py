"""Which orders are IVIG: only they get cards; everything else is silence."""

from __future__ import annotations

import re

import hypothesis.strategies as st
import pytest
from hypothesis import given

from cds_service.presentation import ehr_text
from tests.fhir_data import (
    ATC,
    SNOMED,
    administration,
    days_ago,
    gbs,
    hook_request,
    ivig_order,
    medication_request,
    prefetch,
    weight,
)

NDC = "http://hl7.org/fhir/sid/ndc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
V3_ROUTE = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
EDQM = "http://standardterms.edqm.eu"
DATA = prefetch(conditions=[gbs()], weights=[weight(70)])
ROUTE_DECIDES = "SAFE-route-decides"


def by_route(order: dict, *, system: str | None = None, code: str | None = None, text: str | None = None,
             dosage_text: str | None = None) -> dict:
    """The order with a route: coded (with no display, as many EHRs send it), as text, or in the dosage's text."""
    route: dict = {}
    if code:
        route["coding"] = [{"system": system, "code": code}]
    if text:
        route["text"] = text
    instruction: dict = {"route": route} if route else {}
    if dosage_text:
        instruction["text"] = dosage_text
    order["dosageInstruction"] = [instruction]
    return order


GAMMAGARD_LIQUID = (NDC, "0944-2700-02")   # licensed for intravenous and subcutaneous use
GAMUNEX_C = (NDC, "13533-0800-12")         # likewise, as a 5-4-2 package code


@pytest.mark.parametrize("order", [
    ivig_order(),
    ivig_order(coding=(NDC, "44206-0439-10")),      # Privigen 40 g, package NDC, 5-4-2
    ivig_order(coding=(NDC, "44206-0436-05")),      # Privigen 5 g: another product code of the same brand
    by_route(ivig_order(coding=(NDC, "00944270002")), system=SNOMED, code="47625008"),  # Gammagard Liquid, 11 digits
    ivig_order(coding=(NDC, "68982-0850-01")),      # Octagam 10 % (Octapharma)
    ivig_order(coding=("urn:local", "X1"), text="Immune globulin intravenous (human) 10%"),
    ivig_order(coding=("urn:local", "X1"), text="IVIG"),
    ivig_order(coding=(RXNORM, "0"), text="Privigen 100 MG/ML Injectable Solution"),  # an RxNorm code we do not list: the brand
    by_route(ivig_order(coding=GAMUNEX_C), system=SNOMED, code="47625008"),           # coded route, no display
    by_route(ivig_order(coding=GAMMAGARD_LIQUID), system=V3_ROUTE, code="IV"),
    by_route(ivig_order(coding=GAMMAGARD_LIQUID), system=EDQM, code="20045000"),
    by_route(ivig_order(coding=GAMMAGARD_LIQUID), text="Intravenous"),
    by_route(ivig_order(coding=("urn:local", "X4"), text="Immune globulin 10%"), dosage_text="28 g IV daily for 5 days"),
], ids=["atc", "privigen-40g", "privigen-5g", "gammagard-11-digits", "octagam-10", "text", "ivig-word", "rxnorm-brand",
        "gamunex-snomed-route", "gammagard-v3-route", "gammagard-edqm-route", "gammagard-route-text", "dosage-text"])
def test_ivig_is_recognised_by_product_and_route(cds, order):
    cards = cds(hook_request([order], prefetch=DATA))
    assert "GBS-1" in {c["source"]["topic"]["code"] for c in cards}


@pytest.mark.parametrize("order", [
    ivig_order(coding=(ATC, "J06BA01")),                                                  # subcutaneous
    ivig_order(coding=(NDC, "44206-0451-01")),                                            # Hizentra
    ivig_order(coding=("urn:local", "X2"), text="Immune globulin subcutaneous (human) 20%"),
    ivig_order(coding=("urn:local", "X5"), text="HyQvia 10 g"),                           # facilitated subcutaneous
    by_route(ivig_order(coding=(ATC, "J06BB01")), system=SNOMED, code="47625008"),      # anti-D, given intravenously
    by_route(ivig_order(coding=("urn:local", "X6"), text="Rho(D) immune globulin intravenous (human)"), text="IV"),
    by_route(ivig_order(coding=(NDC, "49591-0532-01")), text="intravenous"),            # Cytogam (CMV-IGIV)
    ivig_order(coding=("urn:local", "X7"), text="Cytomegalovirus immune globulin intravenous"),
    ivig_order(coding=(RXNORM, "35465"), text="Rho(D) immune globulin"),
    by_route(ivig_order(coding=GAMMAGARD_LIQUID), system=SNOMED, code="34206005"),      # dual-route product, subcutaneous
    by_route(ivig_order(coding=GAMUNEX_C), system=V3_ROUTE, code="SQ"),
    by_route(ivig_order(coding=GAMUNEX_C), text="subcutaneous"),
    medication_request("H02AB04", status="draft", id="mp"),                              # methylprednisolone
], ids=["scig-atc", "hizentra", "scig-text", "hyqvia", "anti-d-iv", "winrho-text", "cytogam", "cmv-text", "rho-d-rxnorm",
        "gammagard-sc", "gamunex-v3-sq", "gamunex-sc-text", "methylprednisolone"])
def test_other_orders_get_no_cards(cds, order):
    assert cds(hook_request([order], prefetch=DATA)) == []


@pytest.mark.parametrize("order", [
    ivig_order(coding=GAMMAGARD_LIQUID),
    ivig_order(coding=GAMUNEX_C),
    ivig_order(coding=(ATC, "J06BA")),                                        # normal immunoglobulin, either route
    ivig_order(coding=(SNOMED, "714569001")),                                 # product containing normal immunoglobulin
    ivig_order(coding=("urn:local", "X3"), text="Immune globulin"),
    by_route(ivig_order(coding=GAMUNEX_C), text="IV or subcutaneous"),        # a route that contradicts itself
], ids=["gammagard", "gamunex", "atc-group", "snomed-product", "text", "both-routes"])
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_a_dual_route_product_without_a_route_gets_one_card_saying_the_route_decides(cds, order, hook):
    order = by_route(order, text=None) if "dosageInstruction" not in order else order
    order["dosageInstruction"][0].update(doseAndRate=[{"doseQuantity": {"value": 28, "unit": "g", "code": "g"}}])
    (card,) = cds(hook_request([order], hook=hook, prefetch=DATA))
    assert card["source"]["topic"]["code"] == ROUTE_DECIDES and card["indicator"] == "warning"
    assert "suggestions" not in card and "IVIG only if given intravenously" in card["summary"]


PRIVIGEN = (NDC, "44206-0436-05")  # licensed for intravenous use only


def _two_routes(first: dict, second: dict) -> dict:
    order = ivig_order(coding=PRIVIGEN, text="Privigen (Immune Globulin Intravenous (Human)) 10%")
    order["dosageInstruction"] = [{"route": first}, {"route": second}]
    return order


@pytest.mark.parametrize("order", [
    by_route(ivig_order(coding=PRIVIGEN), system=SNOMED, code="26643006"),                # oral route, coded alone
    by_route(ivig_order(coding=("urn:local", "X8"), text="Immune globulin intravenous (human) 10%"), text="PO"),
    by_route(ivig_order(coding=PRIVIGEN), system=SNOMED, code="72607000"),                # intrathecal
    by_route(ivig_order(coding=(ATC, "J06BA02")), text="Per NG tube"),
    by_route(ivig_order(coding=GAMUNEX_C), text="Oral"),                                  # dual-route product, oral
    _two_routes({"text": "Intravenous"}, {"text": "Oral"}),                               # routes that contradict each other
], ids=["oral-snomed", "po-text", "intrathecal", "ng-tube", "dual-route-oral", "iv-and-oral"])
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_immunoglobulin_by_a_route_it_is_not_given_by_gets_the_route_card(cds, order, hook):
    """An explicit route that is neither intravenous nor subcutaneous or intramuscular is no IVIG (the name's
    "Intravenous" does not outweigh it), and no other product either: one warning asks for the route, and no dose is
    offered, also at signing (before, an oral Privigen order got the GBS regimen and a one-click dose)."""
    (card,) = cds(hook_request([order], hook=hook, prefetch=DATA))
    assert card["source"]["topic"]["code"] == ROUTE_DECIDES and card["indicator"] == "warning" and "suggestions" not in card


@pytest.mark.parametrize("route", [
    {"text": "IVPB"}, {"text": "INTRAVEN"}, {"text": "PICC line"}, {"text": "Peripheral IV"}, {"text": "Infusion"},
    {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.4.698288.330", "code": "11"}]},  # a local code, no words
], ids=["ivpb", "intraven", "picc", "peripheral-iv", "infusion-names-no-route", "local-code-only"])
def test_an_intravenous_route_as_ehrs_write_it_or_a_route_without_words_leaves_ivig_ivig(cds, route):
    order = ivig_order(coding=PRIVIGEN)
    order["dosageInstruction"] = [{"route": route}]
    assert "GBS-1" in {c["source"]["topic"]["code"] for c in cds(hook_request([order], prefetch=DATA))}


def test_the_route_decides_without_patient_data(cds):
    """No prefetch and no fhirServer: the route card needs no record, so no 412."""
    (card,) = cds(hook_request([ivig_order(coding=GAMUNEX_C)]))
    assert card["source"]["topic"]["code"] == ROUTE_DECIDES


def test_a_subcutaneous_course_on_record_is_not_an_earlier_ivig_course(cards_by_topic):
    scig = medication_request("44206-0451-01", NDC, status="completed", authored=days_ago(5))
    cards = cards_by_topic(conditions=[gbs(onset=days_ago(10))], medications=[scig])
    assert "GBS-1" in cards


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


@pytest.mark.parametrize("display, shown, absent", [
    ("**Stop IVIG** [details](http://evil.example/x)", r"\*\*Stop IVIG\*\* [details\](http\://evil.example/x)", "[details](http"),
    ("GBS\n# Give 10 times the dose", "GBS # Give 10 times the dose", "\n# Give"),
    ("GBS ![x](https://evil.example/i.png) see www.evil.example", r"\![x\](https\://evil.example/i.png) see www\.evil.example", "![x]("),
    ("GBS ~~struck~~ `code` _em_ snake_case", r"GBS \~\~struck\~\~ \`code\` \_em\_ snake_case", "~~struck~~"),
], ids=["emphasis-and-link", "newline-heading", "image-and-autolink", "strike-code-emphasis"])
def test_ehr_text_in_a_card_cannot_use_markdown(cds, display, shown, absent):
    """EHR text is shown as the characters it holds: no emphasis, link, image, heading or table of its own."""
    from tests.fhir_data import condition

    coded = condition("G61.0", display=display)
    cards = cds(hook_request([ivig_order()], prefetch=prefetch(conditions=[coded], weights=[weight(70)])))
    (card,) = [c for c in cards if c["source"]["topic"]["code"] == "GBS-1"]
    assert shown in card["detail"] and absent not in card["detail"]


@given(st.text(alphabet="ab1 _*`~\\[]()!.:/éhHtTpPsSfFwW\n", max_size=40))
def test_ehr_text_escapes_as_the_plainly_written_rules_say(text):
    """presentation spells its Markdown patterns for speed; they must escape exactly what the plain spelling does: a
    \\ before \\ ` * ~, an underscore at a word's edge, ] before ( or [, ! before [; and after a URL scheme or "www"
    that starts a word."""
    markdown = re.compile(r"[\\`*~]|(?<!\w)_|_(?!\w)|\](?=[(\[])|!(?=\[)")
    autolink = re.compile(r"(?i)\b(?:https?|ftp)(?=://)|\bwww(?=\.)")
    line = markdown.sub(lambda m: "\\" + m.group(0), " ".join(text.split()))
    assert ehr_text(text) == autolink.sub(lambda m: m.group(0) + "\\", line)


# --- orders coded by RxNorm or HCPCS alone: no display names the product, the code must ----------------------------

HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"


def coded_only(system: str, code: str) -> dict:
    """A draft order whose medication is one coding whose display is its code (no brand, no route in its words)."""
    return medication_request(code, system, status="draft", id="ivig-1")


@pytest.mark.parametrize("order", [
    coded_only(RXNORM, "1809517"),       # privigen 10 % in 100 ML Injection (branded drug)
    coded_only(RXNORM, "758997"),        # immunoglobulin G, human 100 MG/ML [Privigen] (branded component)
    coded_only(RXNORM, "226026"),        # Octagam (brand name)
    coded_only(RXNORM, "2102464"),       # panzyga 10 % in 100 ML Injection
    coded_only(RXNORM, "1809457"),       # Flebogamma 5 % in 100 ML Injection
    coded_only(RXNORM, "2102433"),       # immune globulin intravenous (human) - ifas (ingredient)
    coded_only(HCPCS, "J1459"),          # Injection, immune globulin (privigen), intravenous, 500 mg
    coded_only(HCPCS, "J1599"),          # Injection, immune globulin, intravenous, not otherwise specified, 500 mg
    by_route(coded_only(RXNORM, "1809582"), system=V3_ROUTE, code="IV"),   # Gamunex-C 100 mL, dual route, given IV
    by_route(coded_only(RXNORM, "1809421"), text="intravenous"),           # immunoglobulin G, human 10 % in 100 ML (no brand)
    by_route(coded_only(HCPCS, "J1569"), system=SNOMED, code="47625008"),  # Gammagard liquid, given IV
], ids=["privigen-sbd", "privigen-sbdc", "octagam-bn", "panzyga-sbd", "flebogamma-sbd", "ivig-ingredient",
        "hcpcs-privigen", "hcpcs-ivig-nos", "gamunex-sbd-iv", "generic-scd-iv", "hcpcs-gammagard-iv"])
def test_an_ivig_coded_by_rxnorm_or_hcpcs_alone_gets_the_guideline_card(cds, order):
    cards = cds(hook_request([order], prefetch=DATA))
    assert "GBS-1" in {c["source"]["topic"]["code"] for c in cards}


@pytest.mark.parametrize("order", [
    coded_only(RXNORM, "1809582"),       # Gamunex-C: licensed intravenous and subcutaneous
    coded_only(RXNORM, "1809670"),       # GAMMAGARD 10 % in 100 ML Injection
    coded_only(RXNORM, "1809421"),       # immunoglobulin G, human 10 % in 100 ML Injection: no brand, either route
    coded_only(HCPCS, "J1561"),          # Gamunex-C/Gammaked
], ids=["gamunex-sbd", "gammagard-sbd", "generic-scd", "hcpcs-gamunex"])
def test_a_code_for_an_either_route_immunoglobulin_without_a_route_gets_the_route_card(cds, order):
    (card,) = cds(hook_request([order], prefetch=DATA))
    assert card["source"]["topic"]["code"] == ROUTE_DECIDES


@pytest.mark.parametrize("order", [
    coded_only(RXNORM, "1809069"),                                           # Hizentra 20 % in 10 ML Injection
    coded_only(RXNORM, "1549694"),                                           # HYQVIA 10 GM / 100 ML Kit
    coded_only(RXNORM, "2196299"),                                           # Xembify 200 MG/ML Injection
    by_route(coded_only(RXNORM, "1809582"), system=V3_ROUTE, code="SQ"),    # Gamunex-C given subcutaneously
    coded_only(RXNORM, "1809036"),                                           # GamaSTAN (intramuscular)
    coded_only(HCPCS, "J1559"),                                              # Hizentra
    by_route(coded_only(RXNORM, "1806661"), text="intravenous"),            # Cytogam (CMV immune globulin), IV
    by_route(coded_only(HCPCS, "J0850"), text="intravenous"),               # CMV immune globulin intravenous
    by_route(coded_only(RXNORM, "1870645"), system=V3_ROUTE, code="IV"),    # ATGAM (anti-thymocyte globulin, equine)
    by_route(coded_only(HCPCS, "J7511"), system=V3_ROUTE, code="IV"),       # rabbit anti-thymocyte globulin
    by_route(medication_request("", status="draft", id="atg", text="Lymphocyte immune globulin, anti-thymocyte globulin "
                                "(equine) 50 mg/mL"), system=V3_ROUTE, code="IV"),  # in words only
], ids=["hizentra-sbd", "hyqvia-kit", "xembify", "gamunex-sq", "gamastan-im", "hcpcs-hizentra",
        "cytogam-iv", "hcpcs-cmv-iv", "atgam-iv", "hcpcs-atg-iv", "atg-words-iv"])
def test_subcutaneous_hyperimmune_or_antithymocyte_codes_get_no_cards(cds, order):
    assert cds(hook_request([order], prefetch=DATA)) == []


NOT_LICENSED = "SAFE-route-not-licensed"


@pytest.mark.parametrize("order", [
    by_route(coded_only(RXNORM, "1809069"), system=V3_ROUTE, code="IV"),                        # Hizentra, coded
    by_route(ivig_order(coding=(NDC, "44206-0451-01")), system=SNOMED, code="47625008"),      # Hizentra, NDC
    by_route(coded_only(RXNORM, "2196299"), text="Intravenous"),                                # Xembify
    by_route(medication_request("", status="draft", id="sc", text="Cuvitru 20%"), text="IV"),
    by_route(medication_request("", status="draft", id="sc", text="Cutaquig 16.5%"), dosage_text="8 g IV weekly"),
    by_route(coded_only(RXNORM, "1549694"), system=EDQM, code="20045000"),                      # HyQvia kit
    by_route(coded_only(RXNORM, "1809036"), system=V3_ROUTE, code="IV"),                        # GamaSTAN (intramuscular)
], ids=["hizentra-rxnorm", "hizentra-ndc", "xembify", "cuvitru-words", "cutaquig-dosage-text", "hyqvia", "gamastan"])
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_a_subcutaneous_product_ordered_intravenously_gets_one_card_saying_it_is_not_licensed_for_the_route(cds, order, hook):
    """A subcutaneous (or intramuscular) product is never IVIG, but ordered IV it is about to be given by a route it is
    not licensed for: one warning, named as the service's rule, no dose and no guideline advice, at both hooks."""
    (card,) = cds(hook_request([order], hook=hook, prefetch=DATA))
    assert card["source"]["topic"]["code"] == NOT_LICENSED and card["indicator"] == "warning"
    assert "not licensed for intravenous use" in card["summary"] and "suggestions" not in card
    assert card["detail"].startswith("**Service rule (not the guideline's)**") and "service's own rule" in card["detail"]


def test_a_subcutaneous_product_ordered_intravenously_beside_an_ivig_order_still_gets_its_card(cds):
    hizentra = by_route(coded_only(RXNORM, "1809069"), system=V3_ROUTE, code="IV")
    codes = {c["source"]["topic"]["code"] for c in cds(hook_request([ivig_order(id="ivig-2"), hizentra], hook="order-sign", prefetch=DATA))
             } | {c["source"]["topic"]["code"] for c in cds(hook_request([ivig_order(id="ivig-2"), hizentra], prefetch=DATA))}
    assert {NOT_LICENSED, "GBS-1"} <= codes


def _compounded(code: dict, *ingredients: dict) -> dict:
    """A draft whose medication is a contained Medication (a pharmacy's local product): its code and ingredients."""
    order = by_route(medication_request("", status="draft", id="local"), system=SNOMED, code="47625008")
    del order["medicationCodeableConcept"]
    order["contained"] = [{"resourceType": "Medication", "id": "med", "code": code,
                           "ingredient": [{"itemCodeableConcept": i, "isActive": True} for i in ingredients]}]
    order["medicationReference"] = {"reference": "#med"}
    return order


def test_a_contained_medication_is_named_by_its_ingredients_too(cds):
    """A local product's name says little ("IG compound"); its ingredient says which immunoglobulin it is, both ways."""
    normal = {"coding": [{"system": ATC, "code": "J06BA02"}]}
    anti_d = {"coding": [{"system": RXNORM, "code": "35465", "display": "Rho(D) immune globulin"}]}
    assert "GBS-1" in {c["source"]["topic"]["code"] for c in cds(hook_request([_compounded({"text": "IG compound"}, normal)],
                                                                                 prefetch=DATA))}
    assert cds(hook_request([_compounded({"text": "Immune globulin 1500 IU"}, anti_d)], prefetch=DATA)) == []


@pytest.mark.parametrize("words", ["GamaSTAN S/D immune globulin (human)", "BayGam immune globulin", "Vivaglobin 16%"])
def test_an_extravascular_normal_immunoglobulin_named_in_words_alone_gets_no_cards(cds, words):
    """Named without a code or a route, an intramuscular or subcutaneous brand is still not IVIG (not "the route decides")."""
    assert cds(hook_request([medication_request("", status="draft", id="im", text=words)], prefetch=DATA)) == []


@pytest.mark.parametrize("words", ["Intratect 100 g/l solution for infusion", "Ig Vena 50 g/l", "Nanogam 50 mg/ml",
                                   "Sandoglobulin 6 g", "IQYMUNE 10g/100ml"])
def test_a_european_intravenous_brand_named_in_words_alone_is_ivig(cds, words):
    """EHRs outside the US send no NDC or RxNorm code: the brand's name is all there is (these got no card)."""
    order = medication_request("", status="draft", id="eu", text=words)
    assert "GBS-1" in {c["source"]["topic"]["code"] for c in cds(hook_request([order], prefetch=DATA))}
    (card,) = cds(hook_request([medication_request("", status="draft", id="eu", text="Kiovig 100 mg/ml")], prefetch=DATA))
    assert card["source"]["topic"]["code"] == ROUTE_DECIDES  # Gammagard Liquid's European name: either route


def test_an_administration_coded_by_hcpcs_is_an_earlier_ivig_course(cards_by_topic):
    """Administrations are often billed, and coded, by HCPCS: a Privigen infusion 20 days into this episode counts."""
    given = administration("J1459", HCPCS, when=days_ago(20))
    cards = cards_by_topic(conditions=[gbs(onset=days_ago(30))], administrations=[given])
    assert "GBS-6" in cards and "GBS-1" not in cards
