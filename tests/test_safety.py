"""Side effects and monitoring (rows SAFE-1, SAFE-2 and the weight check), and the card contract, through the HTTP API."""

from __future__ import annotations

import pytest

from tests.card_checks import assert_warning_without_suggestions, stated_topics
from tests.fhir_data import (
    SNOMED,
    administration,
    condition,
    days_ago,
    earlier_ivig_course,
    gbs,
    hook_request,
    ivig_order,
    medication_request,
    observation,
    patient,
    prefetch,
    weight,
)

EGFR_UNIT = "mL/min/{1.73_m2}"
NO_LEVEL = "Guideline statement (no level)"
RENAL_SENTENCE = ("The incidents related to IVIG included hypotension, dyspnoea, fever and haematuria, nausea or vomiting, "
                  "meningism, exacerbation of chronic renal failure, possible myocardial infarction, and painful erythema at the infusion.")
THROMBOSIS_SENTENCE = ("Severe adverse events leading to discontinuation of the treatment were noted in ca. 4% of all treatment "
                       "courses. They included thrombosis of the jugular vein, allergic reaction and retrosternal pressure.")
WEIGHT_SENTENCE = "The usual IVIG regimen is 0.4 g/kg/day for 5 days."
MONITORING_SENTENCE = ("However, to avoid these complications careful monitoring of laboratory findings like full blood count, "
                       "liver enzymes and renal functions should be mandatory [187].")


def egfr(value: float, when: str | None = None) -> dict:
    return observation("98979-8", value, EGFR_UNIT, when=when, low=60, display="eGFR (CKD-EPI 2021)")


def creatinine(value: float, when: str | None = None) -> dict:
    return observation("2160-0", value, "mg/dL", when=when, low=0.6, high=1.2, display="Creatinine")


def assert_card_contract(cards: list[dict]) -> None:
    """CDS Hooks card contract: uuids everywhere, short summaries, override reasons on every warning."""
    uuids = [c["uuid"] for c in cards] + [s["uuid"] for c in cards for s in c.get("suggestions", [])]
    assert all(uuids) and len(set(uuids)) == len(uuids)
    for card in cards:
        assert len(card["summary"]) < 140, card["summary"]
        assert card["indicator"] in ("info", "warning", "critical")
        if card["indicator"] != "info":
            assert card["overrideReasons"], card["source"]["topic"]["code"]
        assert card["source"]["url"] == "https://doi.org/10.1111/j.1468-1331.2008.02246.x"


# --- SAFE-2-renal -------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    dict(conditions=[condition("N18.4", display="Chronic kidney disease, stage 4")]),
    dict(conditions=[condition("433144002", SNOMED)]),          # CKD stage 3, SNOMED
    dict(labs=[egfr(45)]),                                      # latest eGFR below the laboratory's range
    dict(labs=[creatinine(2.1)]),                               # latest creatinine above the laboratory's range
    dict(labs=[egfr(90, when=days_ago(60)), egfr(45, when=days_ago(2))]),
    dict(conditions=[condition("E11.22", display="Type 2 diabetes mellitus with diabetic chronic kidney disease")]),
    dict(conditions=[condition("I12.9", display="Hypertensive chronic kidney disease")]),
    dict(conditions=[condition("I12.0", "http://hl7.org/fhir/sid/icd-10", "Hypertensive renal disease with renal failure")]),
], ids=["ckd-icd", "ckd-snomed", "low-egfr", "high-creatinine", "newer-low-egfr", "diabetic-ckd", "hypertensive-ckd",
        "who-hypertensive-renal-failure"])
def test_impaired_renal_function_is_a_warning(cards_by_topic, data):
    card = cards_by_topic(**data)["SAFE-2-renal"]
    assert card["indicator"] == "warning" and card["overrideReasons"]
    assert NO_LEVEL in card["detail"] and RENAL_SENTENCE in card["detail"]


@pytest.mark.parametrize("renal", [egfr(45, when=days_ago(1)), creatinine(2.1, when=days_ago(1))], ids=["low-egfr", "high-creatinine"])
def test_an_abnormal_renal_result_is_the_renal_warnings_alone(cards_by_topic, renal):
    """A low eGFR below its range made two cards: the renal warning and 'a monitoring result is abnormal', on the
    same number. The renal card states it, and that monitoring is mandatory; another abnormal result still has its
    card."""
    normal = [observation("718-7", 13.5, "g/dL", low=12, high=16, when=days_ago(1), display="Hemoglobin"),
              observation("1742-6", 24, "U/L", low=7, high=56, when=days_ago(1), display="ALT")]
    cards = cards_by_topic(conditions=[gbs(onset=days_ago(3))], labs=[*normal, renal])
    assert "SAFE-2-renal" in cards and "SAFE-1-results" not in cards, sorted(cards)
    mandatory = "Monitoring of the full blood count, liver enzymes and renal function during IVIG is mandatory"
    assert mandatory in cards["SAFE-2-renal"]["detail"]
    assert not any("within their reference ranges" in c["detail"] for c in cards.values())  # not called reassuring
    low_hb = observation("718-7", 7.9, "g/dL", low=12, high=16, when=days_ago(0), display="Hemoglobin")
    both = cards_by_topic(conditions=[gbs(onset=days_ago(3))], labs=[*normal, low_hb, renal])
    assert "SAFE-2-renal" in both and "Hemoglobin [718-7]: 7.9 g/dL" in both["SAFE-1-results"]["detail"]


def _creatinine(value: float, unit: str, **kwargs) -> dict:
    return observation("14682-9" if unit == "umol/L" else "2160-0", value, unit, display="Creatinine", **kwargs)


def _sexed(sex: str, born: str = "1960-01-01") -> dict:
    return patient(born) | {"gender": sex}


@pytest.mark.parametrize("labs, person, impaired", [
    ([observation("98979-8", 24, EGFR_UNIT)], None, True),                     # eGFR 24 with no range: KDIGO G4
    ([observation("98979-8", 59, EGFR_UNIT)], None, True),                     # just below 60
    ([observation("98979-8", 78, EGFR_UNIT, low=90)], None, False),            # below the lab's range, not below 60
    ([observation("98979-8", 60, EGFR_UNIT)], None, False),
    ([_creatinine(240, "umol/L")], _sexed("male"), True),                      # CKD-EPI 2021: about 24 at 66 years
    ([_creatinine(240, "umol/L")], _sexed("female"), True),
    ([_creatinine(90, "umol/L")], _sexed("male"), False),                      # about 78
    ([_creatinine(1.3, "mg/dL")], _sexed("female"), True),                     # about 45 for a woman of 66
    ([_creatinine(1.3, "mg/dL")], _sexed("male", born="1996-01-01"), False),   # about 77 for a man of 30
    ([_creatinine(240, "umol/L")], _sexed("unknown"), False),                  # no sex: no CKD-EPI, never a guess
    ([_creatinine(240, "umol/L")], _sexed("male", born="2018-01-01"), False),  # a child: CKD-EPI is for adults
    ([_creatinine(1.5, "mg/dL", high=1.2)], _sexed("unknown"), True),          # the lab's range decides when sent
    ([_creatinine(1.1, "mg/dL", high=1.2) | {"interpretation": [{"coding": [{"code": "H"}]}]}], None, True),  # the lab's flag
    ([_creatinine(0.4, "mg/dL", high=1.2) | {"interpretation": [{"coding": [{"code": "A"}]}]}], None, False),  # abnormal: low
], ids=["egfr-24", "egfr-59", "egfr-78-range-90", "egfr-60", "creat-240-male", "creat-240-female", "creat-90-male",
        "creat-1.3-female-66", "creat-1.3-male-30", "creat-240-sex-unknown", "creat-240-child", "creat-above-range", "creat-flag-h",
        "creat-flag-a-low"])
def test_renal_impairment_by_kdigo_and_ckd_epi_where_the_lab_gives_no_range(cards_by_topic, labs, person, impaired):
    """An eGFR below 60 (KDIGO 2012 G3a-G5) is impairment whatever range the lab sent; a creatinine is judged by the
    lab's range or flag, and without either by the eGFR CKD-EPI 2021 computes from it, age and sex."""
    data = dict(labs=labs) | (dict(patient_resource=person) if person else {})
    cards = cards_by_topic(**data)
    assert ("SAFE-2-renal" in cards) is impaired
    if impaired:
        detail = cards["SAFE-2-renal"]["detail"]
        assert "KDIGO 2012" in detail and "CKD-EPI 2021" in detail and "not the guideline's" in detail


def test_the_renal_card_states_the_result_it_rests_on(cards_by_topic):
    card = cards_by_topic(labs=[egfr(45)])["SAFE-2-renal"]
    assert f"45 {EGFR_UNIT} ({days_ago(2)})" in card["detail"]


@pytest.mark.parametrize("data", [
    dict(),
    dict(labs=[egfr(90)]),
    dict(labs=[creatinine(1.0)]),
    dict(labs=[egfr(45, when=days_ago(60)), egfr(90, when=days_ago(2))]),   # older low eGFR, newer normal
    dict(conditions=[condition("N18.4", clinical="resolved")]),
    dict(conditions=[condition("N18.4", verification="refuted")]),
], ids=["nothing", "normal-egfr", "normal-creatinine", "older-low-egfr", "resolved-ckd", "refuted-ckd"])
def test_no_renal_warning_without_current_evidence(cards_by_topic, data):
    assert "SAFE-2-renal" not in cards_by_topic(**data)


def _creatinine_written(value: float, unit: str, *, code: str | None = None) -> dict:
    """A creatinine with the unit as the EHR wrote it and no reference range (the laboratory sent none)."""
    resource = observation("2160-0", value, unit, display="Creatinine")
    resource["valueQuantity"] = {"value": value, "unit": unit} | ({"system": "http://unitsofmeasure.org", "code": code} if code else {})
    return resource


@pytest.mark.parametrize("creatinine", [
    _creatinine_written(2.4, "MG/DL"), _creatinine_written(2.4, "mg/dl"), _creatinine_written(2.4, "mg/dl", code="mg/dL"),
    _creatinine_written(212, "µmol/L"), _creatinine_written(212, "micromol/L"), _creatinine_written(212, "UMOL/L"),
    _creatinine_written(0.212, "mmol/L"),
], ids=["MG/DL", "mg/dl", "mg/dl-code-mg/dL", "µmol/L", "micromol/L", "UMOL/L", "mmol/L"])
def test_a_high_creatinine_without_a_range_warns_whatever_the_spelling_of_its_unit(cards_by_topic, creatinine):
    # 2.4 mg/dL (212 µmol/L) at 56 for a man: eGFR about 31 by CKD-EPI 2021
    cards = cards_by_topic(conditions=[gbs()], labs=[creatinine], patient_resource=patient("1970-05-01") | {"gender": "male"})
    assert "SAFE-2-renal" in cards


def test_a_creatinine_whose_code_and_text_disagree_is_not_converted(cards_by_topic):
    disagreeing = _creatinine_written(212, "umol/L", code="mg/dL")
    cards = cards_by_topic(conditions=[gbs()], labs=[disagreeing], patient_resource=patient("1970-05-01") | {"gender": "male"})
    assert "SAFE-2-renal" not in cards  # 212 mg/dL or 212 µmol/L: the record cannot say which, so nothing is computed


# --- SAFE-2-thrombosis --------------------------------------------------------------------------------


@pytest.mark.parametrize("thrombosis", [
    condition("I82.90", display="Acute embolism and thrombosis of unspecified vein"),
    condition("I82.90", clinical="resolved", onset="2020-03-01"),
    condition("Z86.718", display="Personal history of other venous thrombosis and embolism"),
    condition("128053003", SNOMED, clinical="inactive"),
    condition("I82.C11", clinical="resolved", display="Acute embolism and thrombosis of right internal jugular vein"),
    condition("135001000119100", SNOMED),                       # SNOMED CT US edition: acute DVT of internal jugular vein
    condition("864191000000104", SNOMED, clinical="resolved"),  # SNOMED CT UK edition: thrombosis of internal jugular vein
    condition("I82.512", display="Chronic embolism and thrombosis of left femoral vein"),
    condition("I82.611", display="Acute embolism and thrombosis of superficial veins of right upper extremity"),
    condition("I67.6", display="Nonpyogenic thrombosis of intracranial venous system"),
    condition("I67.6", "http://hl7.org/fhir/sid/icd-10", display="Nonpyogenic thrombosis of intracranial venous system"),
    condition("I26.99", display="Other pulmonary embolism without acute cor pulmonale"),
    condition("I63.9", clinical="resolved", display="Cerebral infarction, unspecified"),
    condition("I21.4", clinical="resolved", display="Non-ST elevation (NSTEMI) myocardial infarction"),
], ids=["active-dvt", "resolved-dvt", "history-code", "inactive-snomed-dvt", "jugular-the-guidelines-example",
        "jugular-snomed-us", "jugular-snomed-uk", "chronic-lower-limb", "upper-limb", "cerebral-venous", "cerebral-venous-who",
        "pulmonary-embolism", "ischaemic-stroke", "myocardial-infarction"])
def test_a_thrombosis_on_record_active_or_past_is_a_warning(cards_by_topic, thrombosis):
    card = cards_by_topic(conditions=[thrombosis])["SAFE-2-thrombosis"]
    assert card["indicator"] == "warning" and card["overrideReasons"]
    assert NO_LEVEL in card["detail"] and THROMBOSIS_SENTENCE in card["detail"]
    assert thrombosis["code"]["coding"][0]["code"] in card["detail"]


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error", "unconfirmed", "provisional", "differential"])
def test_a_refuted_or_unconfirmed_thrombosis_is_no_history(cards_by_topic, verification):
    assert "SAFE-2-thrombosis" not in cards_by_topic(conditions=[condition("I82.90", verification=verification)])


# --- SAFE-weight --------------------------------------------------------------------------------------


@pytest.mark.parametrize("weights, why", [
    ([], "No body weight is on record."),
    ([weight(70, "mL")], "is not a usable value in a unit of mass (mL)"),
    ([weight(70, when=days_ago(90)), weight(70, "mL", when=days_ago(1))], "is not a usable value in a unit of mass (mL)"),
], ids=["none", "millilitres", "older-kg-newer-millilitres"])
def test_no_usable_weight_is_a_warning(cards_by_topic, weights, why):
    card = cards_by_topic(weights=weights)["SAFE-weight"]
    assert card["indicator"] == "warning" and card["overrideReasons"]
    assert NO_LEVEL in card["detail"] and WEIGHT_SENTENCE in card["detail"]
    assert why in card["detail"]


def test_a_weight_in_the_wrong_unit_is_not_reported_as_no_weight_on_record(cards_by_topic):
    # The card first says the latest weight on record is unusable, and must not then also claim there is none.
    card = cards_by_topic(weights=[weight(70, "mL")])["SAFE-weight"]
    assert "Body weight: no result on record" not in card["detail"], card["detail"]


@pytest.mark.parametrize("weights", [[weight(70)], [weight(154, "[lb_av]")]], ids=["kg", "lb"])
def test_a_usable_weight_gives_no_weight_warning(cards_by_topic, weights):
    assert "SAFE-weight" not in cards_by_topic(weights=weights)


# --- SAFE-1 (a line in the main card) and SAFE-1-results (a card when a result is missing or abnormal) ----------


def all_monitoring_labs() -> list[dict]:
    return [observation("718-7", 13.5, "g/dL", low=12, high=16, display="Hemoglobin"),
            observation("1742-6", 24, "U/L", low=7, high=56, display="ALT"), egfr(85)]


@pytest.mark.parametrize("conditions", [[gbs()], [condition("G61.81")], [condition("G61.82")], [condition("D47.2"), condition("G63")]],
                         ids=["gbs", "cidp", "mmn", "mgus-neuropathy"])
def test_with_every_result_normal_monitoring_is_a_line_in_the_main_card(cds, conditions):
    cards = cds(hook_request([ivig_order()], prefetch=prefetch(conditions=conditions, weights=[weight(70)], labs=all_monitoring_labs())))
    codes = [c["source"]["topic"]["code"] for c in cards]
    assert "SAFE-1" not in codes and "SAFE-1-results" not in codes
    main = next((c for c in cards if c["indicator"] == "info"), cards[0])  # the first informational card, else the first
    assert "Monitoring during IVIG is mandatory" in main["detail"]
    assert sum("Monitoring during IVIG is mandatory" in c["detail"] for c in cards) == 1


@pytest.mark.parametrize("labs, why", [
    ([], "Full blood count: no result on record"),
    (all_monitoring_labs()[1:], "Full blood count: no result on record"),
    (all_monitoring_labs() + [observation("718-7", 7.9, "g/dL", low=12, high=16, when=days_ago(0), display="Hemoglobin")],
     "Hemoglobin [718-7]: 7.9 g/dL"),
    (all_monitoring_labs() + [observation("1742-6", 300, "U/L", when=days_ago(0), display="ALT")
                              | {"interpretation": [{"coding": [{"code": "H"}]}]}], "ALT [1742-6]: 300 U/L"),
], ids=["no-labs", "no-blood-count", "low-hemoglobin", "alt-flagged-high"])
def test_a_missing_or_abnormal_monitoring_result_is_a_card_of_its_own(cards_by_topic, labs, why):
    cards = cards_by_topic(conditions=[gbs()], labs=labs)
    card = cards["SAFE-1-results"]
    assert card["indicator"] == "info" and NO_LEVEL in card["detail"] and MONITORING_SENTENCE in card["detail"]
    assert why in card["detail"]
    assert not any("**Monitoring during IVIG is mandatory:" in c["detail"] for c in cards.values())  # no line as well


def test_monitoring_card_lists_the_latest_results_and_the_missing_panels(cards_by_topic):
    labs = [observation("718-7", 13.5, "g/dL", display="Hemoglobin"), egfr(85)]
    card = cards_by_topic(labs=labs)["SAFE-1-results"]
    assert f"Hemoglobin [718-7]: 13.5 g/dL ({days_ago(2)})" in card["detail"]
    assert f"85 {EGFR_UNIT}" in card["detail"]
    assert "Liver enzymes: no result on record" in card["detail"]
    assert "Full blood count: no result on record" not in card["detail"]


def test_results_taken_before_the_diagnosis_began_are_out_of_date_and_shown_with_their_dates(cds, cards_by_topic):
    year_old = [observation("718-7", 13.5, "g/dL", low=12, high=16, when=days_ago(400), display="Hemoglobin"),
                observation("1742-6", 24, "U/L", low=7, high=56, when=days_ago(400), display="ALT"), egfr(85, when=days_ago(400))]
    cards = cards_by_topic(conditions=[gbs(onset=days_ago(3))], labs=year_old)
    card = cards["SAFE-1-results"]
    assert "out of date" in card["summary"]
    assert f"Hemoglobin [718-7]: 13.5 g/dL ({days_ago(400)})" in card["detail"]
    assert not any("within their reference ranges" in c["detail"] for c in cards.values())  # not called reassuring


def test_results_taken_since_the_diagnosis_began_are_current(cards_by_topic):
    labs = [observation(code, value, unit, low=low, high=high, when=days_ago(2))
            for code, value, unit, low, high in (("718-7", 13.5, "g/dL", 12, 16), ("1742-6", 24, "U/L", 7, 56))]
    labs.append(egfr(85, when=days_ago(2)))
    cards = cards_by_topic(conditions=[gbs(onset=days_ago(3))], labs=labs)
    assert "SAFE-1-results" not in cards and "within their reference ranges" in cards["GBS-1"]["detail"]


@pytest.mark.parametrize("labs_taken, course_began, out_of_date", [
    (60, 21, True),   # maintenance: the results predate the last course
    (10, 21, False),  # taken since the last course
    (1, 0, False),    # a course begun today: yesterday's results are its baseline
], ids=["before-last-course", "since-last-course", "course-today"])
def test_results_taken_before_the_last_ivig_course_are_out_of_date(cards_by_topic, labs_taken, course_began, out_of_date):
    """A CIDP on maintenance IVIG for years, whose only results are from before the last course: they were called
    reassuring ('within their reference ranges'), though they cannot show what the IVIG already given did to the
    kidneys or the blood count, which is what the monitoring is for."""
    labs = [observation(code, value, unit, low=low, high=high, when=days_ago(labs_taken))
            for code, value, unit, low, high in (("718-7", 13.5, "g/dL", 12, 16), ("1742-6", 24, "U/L", 7, 56))]
    labs.append(egfr(85, when=days_ago(labs_taken)))
    cards = cards_by_topic(conditions=[condition("G61.81", onset=days_ago(1800))], labs=labs,
                           medications=[earlier_ivig_course(course_began)])
    assert ("SAFE-1-results" in cards) is out_of_date, sorted(cards)
    if out_of_date:
        assert "before the last IVIG course on record began, is out of date" in cards["SAFE-1-results"]["detail"]
        assert not any("within their reference ranges" in c["detail"] for c in cards.values())


@pytest.mark.parametrize("born, judged", [("2017-08-20", False), ("1970-05-01", True)], ids=["child", "adult"])
def test_a_creatinine_sent_without_a_range_is_not_called_within_range_unless_an_egfr_judges_it(cards_by_topic, born, judged):
    """A child's creatinine of 0.9 mg/dL, sent with no reference range or flag, was called 'within their reference
    ranges', though no range was sent and the service computes no eGFR for children (CKD-EPI is for adults): the
    monitoring card lists it as unjudged instead. An adult's is judged by the CKD-EPI eGFR computed from it."""
    labs = [observation("718-7", 13.5, "g/dL", low=12, high=16, when=days_ago(1), display="Hemoglobin"),
            observation("1742-6", 24, "U/L", low=7, high=56, when=days_ago(1), display="ALT"),
            observation("2160-0", 0.9, "mg/dL", when=days_ago(1), display="Creatinine")]
    cards = cards_by_topic(conditions=[gbs(onset=days_ago(3))], labs=labs, patient_resource=patient(birth_date=born) | {"gender": "female"})
    assert ("SAFE-1-results" in cards) is not judged, sorted(cards)
    assert any("within their reference ranges" in c["detail"] for c in cards.values()) is judged
    if not judged:
        assert "Creatinine [2160-0]: 0.9 mg/dL" in cards["SAFE-1-results"]["detail"]
        assert "cannot be judged here" in cards["SAFE-1-results"]["detail"]


def test_at_signing_monitoring_is_not_repeated(cds):
    body = hook_request([ivig_order(id="ivig-1", daily_g=28, days=5), ivig_order(id="ivig-2", daily_g=28, days=5)],
                        hook="order-sign", prefetch=prefetch(conditions=[gbs()], weights=[weight(70)]))
    assert not any(c["source"]["topic"]["code"].startswith("SAFE-1") for c in cds(body))


# --- a course that may still be running ------------------------------------------------------------------------

RECENT = "SAFE-recent-course"


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("record", [
    {"medications": [earlier_ivig_course(2, status="active")]},                      # an order running since 2 days ago
    {"medications": [earlier_ivig_course(5)]},                                       # completed, begun 5 days ago
    {"administrations": [administration(when=days_ago(d)) for d in range(1, 6)]},   # a full course, ended yesterday
], ids=["active-order", "completed-order", "administrations"])
def test_ivig_ordered_or_given_in_the_last_5_days_is_a_warning_at_both_hooks(cds, hook, record):
    body = hook_request([ivig_order(daily_g=28, days=5)], hook=hook,
                        prefetch=prefetch(conditions=[gbs(onset=days_ago(8))], weights=[weight(70)], **record))
    (card,) = [c for c in cds(body) if RECENT in stated_topics(c)]
    assert_warning_without_suggestions(card, stating="may still be running")
    assert "J06BA02" in card["detail"]  # the course it rests on


@pytest.mark.parametrize("record", [
    {"medications": [earlier_ivig_course(6)]},
    {"administrations": [administration(when=days_ago(20))]},
    {"medications": [earlier_ivig_course(1, status="cancelled")]},
    {},
], ids=["order-6-days-ago", "given-20-days-ago", "cancelled", "none"])
def test_no_recent_course_warning_for_older_cancelled_or_no_course(cards_by_topic, record):
    assert RECENT not in cards_by_topic(conditions=[gbs(onset=days_ago(30))], **record)


# --- IVIG stewardship ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("conditions", [[], [condition("I10", display="Essential hypertension")],
                                        [condition("G61.0", clinical="resolved"), condition("E11.9")]],
                         ids=["none", "hypertension", "resolved-gbs"])
def test_an_ivig_order_for_no_diagnosis_the_guideline_covers_gets_one_stewardship_card(cards_by_topic, conditions):
    cards = cards_by_topic(conditions=conditions, labs=all_monitoring_labs())
    assert [code for code in cards if code != "SAFE-stewardship"] == []
    card = cards["SAFE-stewardship"]
    assert card["indicator"] == "info" and "does not cover" in card["summary"]
    for c in conditions:
        if c["clinicalStatus"]["coding"][0]["code"] == "active":
            assert c["code"]["coding"][0]["code"] in card["detail"]
    if not [c for c in conditions if c["clinicalStatus"]["coding"][0]["code"] == "active"]:
        assert "Diagnoses: none on record" in card["detail"]
    assert "Monitoring during IVIG is mandatory" in card["detail"]  # the line goes in the only card


def test_a_covered_diagnosis_gets_no_stewardship_card(cards_by_topic):
    assert "SAFE-stewardship" not in cards_by_topic(conditions=[gbs(), condition("I10")])


# real ICD-10-CM codes the guideline does not cover (a long problem list)
_UNCOVERED = ["I10", "E11.9", "E78.5", "K21.9", "J45.909", "M54.5", "F32.9", "N40.0", "E03.9", "G47.33", "M17.11",
              "I48.91", "K59.00", "R51.9", "L40.0"]


def test_a_long_problem_list_is_counted_not_read_out(cards_by_topic):
    """A card lists the diagnoses the indication would be among: the guideline's when there is one (not the rest of
    the problem list), else at most ten of the current diagnoses and how many more there are."""
    uncovered = [condition(code) for code in _UNCOVERED]
    covered = cards_by_topic(conditions=[gbs(), *uncovered])
    assert covered, "a GBS patient gets cards"
    for card in covered.values():
        assert not any(f"[{code}]" in card["detail"] for code in _UNCOVERED), card["summary"]
    stewardship = cards_by_topic(conditions=uncovered, labs=all_monitoring_labs())["SAFE-stewardship"]["detail"]
    assert sum(f"[{code}]" in stewardship for code in _UNCOVERED) == 10
    assert f"… and {len(_UNCOVERED) - 10} more current diagnoses on record" in stewardship


# --- no IVIG, no card ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [
    medication_request("H02AB07", status="draft", id="pred-1"),
    medication_request("J06BA01", status="draft", id="scig-1", display="immunoglobulins, normal human, for extravascular adm."),
], ids=["prednisone", "subcutaneous-immunoglobulin"])
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_an_order_that_is_not_ivig_gets_no_card_whatever_the_record(cds, order, hook):
    data = prefetch(conditions=[condition("N18.4"), condition("I82.90"), condition("G61.81")], labs=[egfr(30)])  # and no weight
    assert cds(hook_request([order], hook=hook, prefetch=data)) == []


def test_an_ivig_draft_that_is_not_selected_gets_no_card(cds):
    other = medication_request("H02AB07", status="draft", id="pred-1")
    body = hook_request([other, ivig_order()], prefetch=prefetch(conditions=[condition("N18.4")]), selections=["MedicationRequest/pred-1"])
    assert cds(body) == []


# --- card contract across the chapters -----------------------------------------------------------------


@pytest.mark.parametrize("order, data", [
    (ivig_order(), dict(conditions=[condition("G61.81"), condition("N18.4"), condition("I82.90")], weights=[weight(70)],
                        medications=[medication_request("H02AB07")])),
    (ivig_order(daily_g=60, days=5), dict(conditions=[condition("G61.82")], weights=[weight(70)],
                                          medications=[medication_request("H02AB07")])),
    (ivig_order(), dict(conditions=[condition("G61.82")], medications=[earlier_ivig_course(0)])),
    (ivig_order(), dict(conditions=[condition("D47.2"), condition("G63")], labs=[creatinine(2.0)], weights=[weight(70000, "g")])),
    (ivig_order(), dict(conditions=[condition("D47.2"), condition("G61.81")], weights=[weight(154, "[lb_av]")])),
], ids=["cidp-renal-thrombosis-steroid", "mmn-departing-steroid", "mmn-maintenance-no-weight", "mgus-renal-grams", "mgus-cidp-lb"])
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_every_card_keeps_the_card_contract(cds, hook, order, data):
    cards = cds(hook_request([order], hook=hook, prefetch=prefetch(**data)))
    assert cards
    assert_card_contract(cards)
    severity = {"critical": 0, "warning": 1, "info": 2}
    assert [severity[c["indicator"]] for c in cards] == sorted(severity[c["indicator"]] for c in cards)  # most severe first


GAMUNEX_C = ("13533-0800-12", "http://hl7.org/fhir/sid/ndc")  # licensed for intravenous and subcutaneous use


def _given(days_before: int, route: str | None = None) -> dict:
    record = administration(*GAMUNEX_C, when=days_ago(days_before))
    if route:
        record["dosage"] = {"route": {"text": route}}
    return record


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_an_immunoglobulin_given_in_the_last_5_days_with_no_route_stated_gets_the_recent_course_warning(cds, hook):
    """It may have been IVIG: the warning asks to check the record, it changes no dose."""
    body = hook_request([ivig_order(daily_g=28, days=5)], hook=hook,
                        prefetch=prefetch(conditions=[gbs(onset=days_ago(8))], weights=[weight(70)], administrations=[_given(2)]))
    (card,) = [c for c in cds(body) if RECENT in stated_topics(c)]
    assert_warning_without_suggestions(card, stating="may still be running")
    assert "13533-0800-12" in card["detail"] and "does not state" in card["detail"]


@pytest.mark.parametrize("given", [_given(2, "subcutaneous"), _given(8)], ids=["subcutaneous", "8-days-ago"])
def test_no_recent_course_warning_for_an_immunoglobulin_given_subcutaneously_or_long_ago(cards_by_topic, given):
    assert RECENT not in cards_by_topic(conditions=[gbs(onset=days_ago(30))], administrations=[given])


def test_an_immunoglobulin_with_no_route_stated_is_no_earlier_ivig_course_for_the_recommendations(cards_by_topic):
    """Only the recent-course warning reads it: a GBS course after it is still the episode's first (GBS-1, not GBS-6)."""
    unstated = cards_by_topic(conditions=[gbs(onset=days_ago(8))], administrations=[_given(2)])
    none = cards_by_topic(conditions=[gbs(onset=days_ago(8))])
    assert set(unstated) - set(none) == {RECENT} and set(none) <= set(unstated)
