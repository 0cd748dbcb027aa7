"""Guillain-Barré syndrome (rows GBS-1..8 and the dosage notes), through the HTTP API."""

from __future__ import annotations

import pytest

from cds_service.cards import STATES
from tests.card_checks import assert_warning_without_suggestions
from tests.fhir_data import (
    SNOMED,
    administration,
    corticosteroid,
    days_ago,
    earlier_ivig_course,
    gbs,
    ivig_order,
    medication_request,
    patient,
    procedure,
    suggested_courses,
)

MILLER_FISHER = ("1767005", SNOMED)
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def gbs_cards(cards_by_topic, **data) -> dict[str, dict]:
    return cards_by_topic(**{"conditions": [gbs(onset=days_ago(5))], **data})


def test_first_line_card_is_level_a_with_the_regimen_computed_for_70_kg(cards_by_topic):
    card = gbs_cards(cards_by_topic)["GBS-1"]
    assert card["indicator"] == "info"
    assert "Level A" in card["summary"] and "Level A" in card["detail"]
    assert "IVIG 0.4 g/kg/day for 5 days or PE can be used as first-line treatment" in card["detail"]
    assert "0.4 g/kg/day × 70 kg = 28 g/day for 5 days, 140 g in total" in card["detail"]
    (suggestion,) = card["suggestions"]
    assert card["selectionBehavior"] == "at-most-one"
    (action,) = suggestion["actions"]
    assert action["type"] == "update"  # the selected draft order is changed, not duplicated
    dosage = action["resource"]["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"] == {"value": 28, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}
    assert dosage["timing"]["repeat"]["boundsDuration"]["value"] == 5
    repeat = dosage["timing"]["repeat"]
    assert (repeat["frequency"], repeat["period"], repeat["periodUnit"]) == (1, 1, "d")
    assert action["resource"]["medicationCodeableConcept"] == ivig_order()["medicationCodeableConcept"]


@pytest.mark.parametrize("hook", ["order-select"])  # at signing only what is wrong: tests/test_signing.py
def test_level_b_preference_over_plasma_exchange(cards_by_topic, hook):
    card = gbs_cards(cards_by_topic, hook=hook)["GBS-2"]
    assert card["indicator"] == "info" and "Level B" in card["detail"]
    assert "IVIG has lesser side effects than PE" in card["detail"]


def test_ivig_after_recent_plasma_exchange_is_a_level_b_warning(cards_by_topic):
    cards = gbs_cards(cards_by_topic, procedures=[procedure("20720000", performed=days_ago(2))])
    card = cards["GBS-3"]
    assert_warning_without_suggestions(card, stating="against IVIG")
    assert "Level B" in card["detail"] and "does not produce significant extra benefit" in card["detail"]
    assert "Plasmapheresis" in card["detail"] or "20720000" in card["detail"]


@pytest.mark.parametrize("age", [54, 9])
def test_after_plasma_exchange_this_episode_no_card_offers_ivig_as_first_line(cards_by_topic, age):
    """GBS-3 advises against IVIG after plasma exchange: no first-line card (adult or child) may offer a course beside it."""
    cards = gbs_cards(cards_by_topic, procedures=[procedure("20720000", performed=days_ago(2))],
                      patient_resource=patient(birth_date=days_ago(age * 365)))
    assert "GBS-3" in cards and not {"GBS-1", "GBS-2", "GBS-5"} & set(cards)
    assert not any("suggestions" in card for card in cards.values())


@pytest.mark.parametrize("code, system", [
    ("36514", "http://www.ama-assn.org/go/cpt"),                 # CPT: therapeutic apheresis; for plasma pheresis
    ("6A550Z3", "http://www.cms.gov/Medicare/Coding/ICD10"),     # ICD-10-PCS: pheresis of plasma, single
    ("6A551Z3", "http://www.cms.gov/Medicare/Coding/ICD10"),     # ICD-10-PCS: pheresis of plasma, multiple
], ids=["cpt", "pcs-single", "pcs-multiple"])
def test_plasma_exchange_billed_by_cpt_or_pcs_counts(cards_by_topic, code, system):
    """Hospitals record the procedure by its billing code: a plasma exchange coded only by CPT or ICD-10-PCS (its display
    repeating the code) is the plasma exchange GBS-3 speaks of."""
    cards = gbs_cards(cards_by_topic, procedures=[procedure(code, system, performed=days_ago(2))])
    assert "GBS-3" in cards and not {"GBS-1", "GBS-2", "GBS-5"} & set(cards)
    assert code in cards["GBS-3"]["detail"]


def test_plasma_exchange_before_this_episode_does_not_warn(cards_by_topic):
    cards = gbs_cards(cards_by_topic, conditions=[gbs(onset=days_ago(5))], procedures=[procedure("20720000", performed=days_ago(400))])
    assert "GBS-3" not in cards


def test_methylprednisolone_brings_the_level_c_combination_card(cards_by_topic):
    methylpred = corticosteroid("H02AB04", "methylprednisolone")
    cards = gbs_cards(cards_by_topic, medications=[methylpred])
    assert "Level C" in cards["GBS-4"]["detail"] and "minor short-term benefit" in cards["GBS-4"]["detail"]
    assert "GBS-4" not in gbs_cards(cards_by_topic)


def test_methylprednisolone_drafted_in_the_same_session_counts(cards_by_topic):
    methylpred = medication_request("H02AB04", status="draft", id="mp-1")
    assert "GBS-4" in cards_by_topic(others=[methylpred], conditions=[gbs()])


def test_children_get_the_level_c_first_line_card(cards_by_topic):
    child = patient(birth_date=days_ago(9 * 365))
    assert "Level C" in gbs_cards(cards_by_topic, patient_resource=child)["GBS-5"]["detail"]
    assert "GBS-5" not in gbs_cards(cards_by_topic)  # born 1970


@pytest.mark.parametrize("years_ago, precision, child", [
    (10, 4, True), (10, 7, True), (17, 4, True),  # 17 or 18: taken as the youngest it can be
    (19, 4, False), (40, 7, False),
], ids=["year-10", "month-10", "year-17-or-18", "year-19", "month-40"])
def test_a_birth_date_known_only_to_the_year_or_month_still_tells_a_child(cards_by_topic, years_ago, precision, child):
    """FHIR lets birthDate be '2016' or '2016-05' (registries, privacy-shifted records). Such a child had no age at
    all, so no GBS-5 card; the youngest age the date allows decides, and never takes a child for an adult."""
    born = days_ago(years_ago * 365 + years_ago // 4)[:precision]
    cards = gbs_cards(cards_by_topic, patient_resource=patient(birth_date=born))
    assert ("GBS-5" in cards) is child, born
    assert "SAFE-record-unreadable" not in cards
    if child:
        assert f"(born {born})" in cards["GBS-5"]["detail"]

def test_relapse_after_a_course_in_this_episode_gets_retreatment_alternatives(cards_by_topic):
    cards = gbs_cards(cards_by_topic, conditions=[gbs(onset=days_ago(30))], medications=[earlier_ivig_course(20)])
    assert "GBS-1" not in cards and "GBS-2" not in cards
    card = cards["GBS-6"]
    assert "Good practice point" in card["detail"]
    grams = sorted(daily_g for daily_g, _ in suggested_courses(card))
    assert grams == [28, 70]  # 0.4 g/kg/day x 5 days, 1 g/kg/day x 2 days
    assert card["selectionBehavior"] == "at-most-one"


def test_after_a_course_one_card_says_the_response_decides_between_retreatment_and_a_second_try(cards_by_topic):
    """GBS-6 (improved, then relapsed: re-treat) and GBS-7 (unresponsive: a second course may be tried) both hold
    whenever an earlier course of this episode is on record, and the record cannot tell which: one card states both
    and what decides, keeps GBS-6's regimens, and offers them once."""
    cards = gbs_cards(cards_by_topic, conditions=[gbs(onset=days_ago(30))], medications=[earlier_ivig_course(20)])
    card = cards["GBS-6"]
    assert card is cards["GBS-7"] and card["source"]["topic"]["code"] == "GBS-response"
    assert card["detail"].startswith("**How the patient responded to the first course decides")
    assert "should preferentially be re-treated with a second course" in card["detail"]
    assert "a second course may be tried, but evidence supporting such a strategy is lacking" in card["detail"]
    assert len(suggested_courses(card)) == 2
    assert sum(1 for c in {id(c): c for c in cards.values()}.values() if c.get("suggestions")) == 1


def test_course_before_this_episode_is_not_an_earlier_course(cards_by_topic):
    cards = gbs_cards(cards_by_topic, conditions=[gbs(onset=days_ago(10))], medications=[earlier_ivig_course(300)])
    assert "GBS-1" in cards and "GBS-6" not in cards


def test_relapse_more_than_nine_weeks_after_onset_raises_acute_onset_cidp(cards_by_topic):
    cards = gbs_cards(cards_by_topic, conditions=[gbs(onset=days_ago(70))], medications=[earlier_ivig_course(65)])
    assert "acute-onset CIDP" in cards["GBS-n-relapse"]["detail"]
    assert "GBS-n-relapse" not in gbs_cards(cards_by_topic, conditions=[gbs(onset=days_ago(30))], medications=[earlier_ivig_course(25)])


def test_two_day_course_brings_the_relapse_note(cards_by_topic):
    cards = gbs_cards(cards_by_topic, order=ivig_order(daily_g=70, days=2))
    assert "greater proportion of patients with a relapse" in cards["GBS-n-2-days"]["detail"]
    assert cards["GBS-1"]["indicator"] == "warning"  # 1 g/kg/day x 2 departs from 0.4 g/kg/day x 5


def test_miller_fisher_gets_the_no_recommendation_card_and_no_regimen(cards_by_topic):
    fisher = {"system": MILLER_FISHER[1], "code": MILLER_FISHER[0], "display": "Fisher's syndrome"}
    cards = gbs_cards(cards_by_topic, conditions=[gbs(), gbs() | {"code": {"coding": [fisher]}}])
    card = cards["GBS-8"]
    assert card["indicator"] == "info" and "No recommendation" in card["detail"]
    assert "No recommendations can be given whether mildly affected GBS patients" in card["detail"]
    assert "GBS-1" not in cards and "suggestions" not in card


@pytest.mark.parametrize("status", [dict(clinical="resolved"), dict(verification="refuted"), dict(verification="entered-in-error")])
def test_resolved_or_refuted_gbs_is_not_an_indication(cards_by_topic, status):
    cards = gbs_cards(cards_by_topic, conditions=[gbs(**status)])
    assert not [code for code in cards if code.startswith("GBS")]


def _encounter_diagnosis(**fields) -> dict:
    """GBS as an encounter diagnosis without a clinicalStatus (FHIR R4 requires one on the problem list only)."""
    diagnosis = {k: v for k, v in gbs(onset=days_ago(5)).items() if k != "clinicalStatus"}
    return diagnosis | {"category": [{"coding": [{"system": CATEGORY, "code": "encounter-diagnosis"}]}]} | fields


@pytest.mark.parametrize("diagnosis", [_encounter_diagnosis(), {k: v for k, v in _encounter_diagnosis().items() if k != "category"}],
                         ids=["encounter-diagnosis", "no-category"])
def test_a_diagnosis_without_a_clinical_status_outside_the_problem_list_counts(cards_by_topic, diagnosis):
    cards = gbs_cards(cards_by_topic, conditions=[diagnosis])
    assert "GBS-1" in cards and "SAFE-stewardship" not in cards


@pytest.mark.parametrize("diagnosis", [
    _encounter_diagnosis(abatementDateTime=days_ago(1)),
    _encounter_diagnosis(category=[{"coding": [{"system": CATEGORY, "code": "problem-list-item"}]}]),
], ids=["abated", "problem-list"])
def test_a_diagnosis_without_a_clinical_status_that_abated_or_is_on_the_problem_list_does_not(cards_by_topic, diagnosis):
    assert "GBS-1" not in gbs_cards(cards_by_topic, conditions=[diagnosis])


@pytest.mark.parametrize("verification", ["provisional", "differential", "unconfirmed"])
def test_an_unconfirmed_gbs_is_named_not_called_uncoded(cards_by_topic, verification):
    cards = gbs_cards(cards_by_topic, conditions=[gbs(onset=days_ago(5), verification=verification)])
    assert not [code for code in cards if code.startswith("GBS")] and "SAFE-stewardship" not in cards
    card = cards["SAFE-stewardship-unconfirmed"]
    assert "Guillain-Barre syndrome [G61.0]" in card["detail"] and "unconfirmed, provisional or a differential" in card["detail"]
    assert f"(active, {verification}, since" in card["detail"]  # the diagnosis line says how sure the record is


@pytest.mark.parametrize("onset", [
    {"onsetDateTime": days_ago(40)[:7]},                        # known to the month only
    {"onsetString": "about three weeks ago"},                   # in words
    {"onsetAge": {"value": 54, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}},
], ids=["month", "words", "age"])
def test_a_course_of_the_last_four_weeks_counts_when_the_onset_day_is_unknown(cards_by_topic, onset):
    """Without a day of onset the episode is taken as the last 4 weeks (the guideline's window from onset): a course
    given 3 days ago is this episode's, so no first-line card offers a full course again."""
    diagnosis = {k: v for k, v in gbs().items() if k not in ("onsetDateTime", "recordedDate")} | onset
    cards = gbs_cards(cards_by_topic, conditions=[diagnosis], administrations=[administration(when=days_ago(3))])
    assert "GBS-6" in cards and "GBS-1" not in cards
    older = gbs_cards(cards_by_topic, conditions=[diagnosis], administrations=[administration(when=days_ago(60))])
    assert "GBS-1" in older and "GBS-6" not in older


def test_an_onset_period_starts_the_episode(cards_by_topic):
    diagnosis = {k: v for k, v in gbs().items() if k != "onsetDateTime"} | {"onsetPeriod": {"start": days_ago(10)}}
    assert "GBS-6" in gbs_cards(cards_by_topic, conditions=[diagnosis], administrations=[administration(when=days_ago(8))])
    assert "GBS-1" in gbs_cards(cards_by_topic, conditions=[diagnosis], administrations=[administration(when=days_ago(12))])


def test_an_earlier_course_given_as_administrations_counts(cards_by_topic):
    cards = gbs_cards(cards_by_topic, conditions=[gbs(onset=days_ago(30))], administrations=[administration(when=days_ago(20))])
    assert "GBS-6" in cards and "GBS-1" not in cards


def test_a_gbs_written_only_in_words_is_not_read_and_the_card_says_so(cards_by_topic):
    """A diagnosis with Condition.code.text and no coding: words on a problem list ('?GBS', 'hx of GBS', 'GBS ruled
    out') carry no status the service could trust, so they are not read as a diagnosis. The stewardship card must not
    list it as if it had been weighed: its line says it is in words only and not read, and the card asks for a code."""
    uncoded = gbs(onset=days_ago(4))
    uncoded["code"] = {"text": "Guillain-Barré syndrome"}
    cards = gbs_cards(cards_by_topic, conditions=[uncoded])
    assert not [code for code in cards if code.startswith("GBS")]
    detail = cards["SAFE-stewardship"]["detail"]
    assert "Diagnosis: Guillain-Barré syndrome (active, since" in detail
    assert "in words only, with no code: not read)" in detail and "add its code" in detail


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_a_child_gets_one_first_line_card_stating_the_three_recommendations(cards_by_topic, hook):
    """'IVIG 0.4 g/kg/day for 5 days or PE can be used as first-line treatment ... (level A)', 'IVIG has lesser side
    effects than PE and this would favour IVIG over PE treatment (level B)' and 'Children ... should be treated with IVIG
    as first-line treatment (level C)' say one thing of a child's order: one card states the three, each with its level
    and sentence, and offers the course once. An adult keeps the GBS-1 and GBS-2 cards."""
    child = patient(birth_date=days_ago(9 * 365))
    signing = hook == "order-sign"  # at signing the card speaks only when something is wrong: a draft 10 times too high
    cards = gbs_cards(cards_by_topic, patient_resource=child, hook=hook, **({"order": ivig_order(daily_g=280, days=5)} if signing else {}))
    shown = {id(card): card for code, card in cards.items() if code in ("GBS-1", "GBS-2", "GBS-5")}
    assert len(shown) == 1
    (card,) = shown.values()
    assert card["source"]["topic"]["code"] == "GBS-first-line-child"
    assert card["extension"][STATES][:3] == ["GBS-1", "GBS-2", "GBS-5"]
    for level in ("Level A", "Level B", "Level C"):
        assert level in card["detail"]
    if not signing:
        assert card["indicator"] == "info" and "0.4 g/kg/day" in card["summary"] and "children" in card["summary"]
        assert len(card["suggestions"]) >= 1
    else:
        assert card["indicator"] == "critical" and "10 times" in card["summary"]
    adult = gbs_cards(cards_by_topic, hook=hook, **({"order": ivig_order(daily_g=2800, days=5)} if signing else {}))
    assert adult["GBS-1"]["source"]["topic"]["code"] == "GBS-1" and "GBS-5" not in adult
