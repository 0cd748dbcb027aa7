"""Dose arithmetic and the draft-order comparison, through the HTTP API (GBS-1: 0.4 g/kg/day for 5 days)."""

from __future__ import annotations

import re

import pytest

from tests.card_checks import stated_topics
from tests.fhir_data import (
    UCUM,
    condition,
    days_ago,
    dosed_ivig_order,
    duration,
    gbs,
    hook_request,
    ivig_order,
    patient,
    prefetch,
    suggested_courses,
    weight,
)


def gbs1(cards_by_topic, order, weights, hook="order-select"):
    return cards_by_topic(order=order, hook=hook, conditions=[gbs()], weights=weights)["GBS-1"]


def suggested_grams(card):
    return [daily_g for daily_g, _ in suggested_courses(card)]


def test_pounds_are_converted_to_kilograms(cards_by_topic):
    card = gbs1(cards_by_topic, ivig_order(), [weight(154, "[lb_av]")])
    assert "154 [lb_av] = 69.85 kg" in card["detail"]
    assert "0.4 g/kg/day × 69.85 kg = 27.9 g/day for 5 days, 139.5 g in total" in card["detail"]
    assert suggested_grams(card) == [27.9]


def test_the_latest_weight_is_used_and_its_date_stated(cards_by_topic):
    card = gbs1(cards_by_topic, ivig_order(), [weight(80, when=days_ago(200)), weight(70, when=days_ago(3))])
    assert f"70 kg, measured 3 days ago ({days_ago(3)})" in card["detail"]
    assert suggested_grams(card) == [28]


@pytest.mark.parametrize("weights, why", [
    ([], "No body weight is on record"),
    ([weight(70, "mL")], "not a usable value in a unit of mass (mL)"),
])
def test_no_usable_weight_means_no_absolute_dose(cards_by_topic, weights, why):
    card = gbs1(cards_by_topic, ivig_order(), weights)
    assert "suggestions" not in card
    assert "Body weight: missing" in card["detail"] and why in card["detail"]
    assert "0.4 g/kg/day for 5 days (2 g/kg in total)" in card["detail"]
    assert not re.search(r"\d g/day", card["detail"])  # no absolute daily dose anywhere


@pytest.mark.parametrize("order", [
    ivig_order(daily_g=28, days=5),
    ivig_order(daily_g=30, days=5),        # rounded up to whole vials: within 10 %
    ivig_order(per_kg=0.4, days=5),        # written per kg
])
def test_a_draft_that_follows_the_regimen_gets_no_suggestion(cards_by_topic, order):
    card = gbs1(cards_by_topic, order, [weight(70)])
    assert card["indicator"] == "info" and "suggestions" not in card
    assert "this follows the guideline's regimen" in card["detail"]


@pytest.mark.parametrize("order, how_far, said, indicator", [
    # 3 g/kg is above any course the guideline gives (2 g/kg): the departure's card is critical (see below)
    (ivig_order(daily_g=42, days=5), "about 1.5 times the guideline's course total",
     "0.6 g/kg/day (42 g/day) for 5 days, 3 g/kg (210 g) in total", "critical"),
    (ivig_order(daily_g=28, days=3), "40 % below the guideline's course total, 2 days shorter",
     "0.4 g/kg/day (28 g/day) for 3 days, 1.2 g/kg (84 g) in total", "warning"),
    (ivig_order(daily_g=28, days=4), "20 % below the guideline's course total, 1 day shorter",
     "0.4 g/kg/day (28 g/day) for 4 days, 1.6 g/kg (112 g) in total", "warning"),
    (ivig_order(daily_g=70, days=2), "about 2.5 times the guideline's daily dose, 3 days shorter",
     "1 g/kg/day (70 g/day) for 2 days, 2 g/kg (140 g) in total", "warning"),
    (ivig_order(daily_g=14, days=5), "50 % below the guideline's course total",
     "0.2 g/kg/day (14 g/day) for 5 days, 1 g/kg (70 g) in total", "warning"),
    # a 10-fold error downwards, said as one (it was "90 % below"; a 1000-fold one was "100 % below")
    (ivig_order(daily_g=2.8, days=5), "about 1/10 of the guideline's course total",
     "0.04 g/kg/day (2.8 g/day) for 5 days, 0.2 g/kg (14 g) in total", "warning"),
])
def test_a_departure_says_which_way_and_how_far_and_offers_the_regimen(cards_by_topic, order, how_far, said, indicator):
    card = gbs1(cards_by_topic, order, [weight(70)])
    assert card["indicator"] == indicator and card["overrideReasons"]
    assert card["summary"] == f"IVIG draft: {how_far} (Level A); guideline: 0.4 g/kg/day for 5 days (2 g/kg in total)"
    assert said in card["detail"] and "the guideline's regimen is 0.4 g/kg/day for 5 days" in card["detail"]
    assert suggested_grams(card) == [28]


def test_departure_is_judged_per_kg_even_without_a_weight(cards_by_topic):
    card = gbs1(cards_by_topic, ivig_order(per_kg=0.3, days=5), [])
    assert card["indicator"] == "warning" and "suggestions" not in card
    assert card["summary"].startswith("IVIG draft: 25 % below the guideline's course total")


def test_a_draft_without_dose_on_order_select_is_not_called_a_departure(cards_by_topic):
    card = gbs1(cards_by_topic, ivig_order(), [weight(70)], hook="order-select")
    assert card["indicator"] == "info" and suggested_grams(card) == [28]
    assert "departs" not in card["detail"]


def test_draft_with_days_but_no_dose_says_it_cannot_be_checked(cards_by_topic):
    card = gbs1(cards_by_topic, ivig_order(days=5), [weight(70)])
    assert "does not state a daily dose" in card["detail"] and card["indicator"] == "info"


# --- a dose check that matches the size of the danger ------------------------------------------------------------

HIGHEST = "SAFE-course-above-highest"


def test_a_tenfold_overdose_is_one_critical_card_that_says_how_far_and_offers_the_regimen(cds):
    """The check on the course total and the departure from the indication's regimen are one problem: one card, as
    severe as the check, opened by it, with the regimen to sign instead."""
    order = ivig_order(daily_g=280, days=5)
    for hook in ("order-select", "order-sign"):
        cards = cds(hook_request([order], hook=hook, prefetch=prefetch(conditions=[gbs()], weights=[weight(70)])))
        critical = [c for c in cards if HIGHEST in stated_topics(c)]
        assert len(critical) == 1 and [c for c in cards if c["indicator"] != "info"] == critical
        (card,) = critical
        assert card["indicator"] == "critical" and card["overrideReasons"] and card["source"]["topic"]["code"] == "GBS-1"
        assert card["summary"].startswith("IVIG draft: about 10 times the guideline's course total")
        assert card["detail"].startswith("**IVIG course 20 g/kg: about 10 times the highest total the guideline gives for "
                                         "any indication (2 g/kg).** The IVIG draft orders of this call")
        assert "The draft order gives 4 g/kg/day (280 g/day) for 5 days, 20 g/kg (1400 g) in total" in card["detail"]
        assert suggested_grams(card) == [28]


@pytest.mark.parametrize("weights", [[], [weight(700)]], ids=["no-weight", "implausible-weight"])
@pytest.mark.parametrize("order, least", [(ivig_order(daily_g=280, days=5), "4.12"), (ivig_order(daily_g=1000), "2.94")],
                         ids=["course", "one-day"])
def test_without_a_usable_weight_grams_no_patient_could_take_are_critical(cds, weights, order, least):
    """1400 g is at least 4.12 g/kg even for a patient of 340.2 kg (the heaviest plausible weight): an overdose for
    anyone, so the check needs no weight."""
    cards = cds(hook_request([order], hook="order-sign", prefetch=prefetch(conditions=[gbs()], weights=weights)))
    (card,) = [c for c in cards if HIGHEST in stated_topics(c)]
    assert card["indicator"] == "critical" and card["summary"].startswith(f"IVIG course at least {least} g/kg")
    assert f"is at least {least} g/kg for any patient up to 340.2 kg (the heaviest plausible weight" in card["detail"]


@pytest.mark.parametrize("order", [ivig_order(daily_g=140, days=5), ivig_order(daily_g=56, days=5)], ids=["700-g", "280-g"])
def test_without_a_usable_weight_grams_a_heavy_patient_could_take_are_not_called_an_overdose(cds, order):
    cards = cds(hook_request([order], hook="order-sign", prefetch=prefetch(conditions=[gbs()], weights=[])))
    assert not [c for c in cards if HIGHEST in stated_topics(c)]


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("order", [ivig_order(daily_g=280), ivig_order(per_kg=4)], ids=["grams", "per-kg"])
def test_a_tenfold_daily_dose_without_days_is_one_critical_departure(cds, hook, order):
    """With no number of days, one day of 4 g/kg is already twice the highest course the guideline gives, and ten times
    the indication's daily dose: one critical card says so, offers the regimen, and (at signing) says what is missing."""
    cards = cds(hook_request([order], hook=hook, prefetch=prefetch(conditions=[gbs()], weights=[weight(70)])))
    (card,) = [c for c in cards if c["indicator"] != "info"]
    assert card["indicator"] == "critical" and card["source"]["topic"]["code"] == "GBS-1"
    assert card["summary"].startswith("IVIG draft: about 10 times the guideline's daily dose")
    assert HIGHEST in stated_topics(card) and suggested_grams(card) == [28]
    assert "one day alone is 4 g/kg (280 g)" in card["detail"]
    assert ("SAFE-order-unreadable" in stated_topics(card)) == (hook == "order-sign")


@pytest.mark.parametrize("conditions", [
    [condition("M33.10", display="Dermatomyositis, unspecified, organ involvement unspecified")],  # no regimen stated
    [],                                                                                              # no diagnosis at all
], ids=["dermatomyositis", "no-diagnosis"])
def test_an_overdose_is_critical_whatever_the_diagnosis(cards_by_topic, conditions):
    cards = cards_by_topic(order=ivig_order(per_kg=2, days=5), conditions=conditions)
    assert cards[HIGHEST]["indicator"] == "critical"
    assert "IVIG course 10 g/kg: about 5 times the highest total" in cards[HIGHEST]["summary"]


@pytest.mark.parametrize("order", [
    ivig_order(daily_g=30, days=5),    # 2.14 g/kg: 2 g/kg rounded up to whole vials, within the tolerance
    ivig_order(daily_g=70, days=2),    # 2 g/kg in 2 days: the highest total, not above it
    ivig_order(daily_g=28),            # no number of days: what is certain, one day of 0.4 g/kg, is far below
    ivig_order(daily_g=140),           # no number of days: one day of 2 g/kg is the highest total, not above it
])
def test_a_course_at_the_highest_total_is_not_critical(cards_by_topic, order):
    assert HIGHEST not in cards_by_topic(order=order, hook="order-sign", conditions=[gbs()])


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
@pytest.mark.parametrize("order, one_day", [
    (ivig_order(daily_g=280), "4 g/kg/day (280 g/day) and no number of days that can be read: one day alone is 4 g/kg (280 g)"),
    (ivig_order(per_kg=4), "4 g/kg/day (280 g/day) and no number of days that can be read: one day alone is 4 g/kg (280 g)"),
    (dosed_ivig_order(280, "g", boundsDuration=duration(5, "mo")),  # a duration in months is no number of days
     "one day alone is 4 g/kg (280 g). What cannot be read: the duration (5 mo) is not a number of days or weeks"),
], ids=["280-g-no-days", "4-g-per-kg-no-days", "280-g-for-5-months"])
def test_a_tenfold_daily_dose_without_days_is_critical(cds, hook, order, one_day):
    """One day of 4 g/kg is twice the highest course total the guideline gives: what the draft certainly gives is
    enough to know it is an overdose, whatever number of days it would run for."""
    cards = cds(hook_request([order], hook=hook, prefetch=prefetch(conditions=[gbs()], weights=[weight(70)])))
    (card,) = [c for c in cards if HIGHEST in stated_topics(c)]
    assert card["indicator"] == "critical" and card["overrideReasons"]
    assert one_day in card["detail"]


def test_several_drafts_without_days_are_critical_when_one_day_of_each_is_above_the_highest_total(cards_by_topic):
    first, second = ivig_order(id="ivig-1", daily_g=100), ivig_order(id="ivig-2", daily_g=100)  # 2.86 g/kg on day one
    assert cards_by_topic(order=first, others=[second], hook="order-sign", conditions=[gbs()])[HIGHEST]["indicator"] == "critical"


# --- doses and schedules as EHRs write them ----------------------------------------------------------------------

FIVE_DAYS = {"boundsDuration": duration(5, "d")}


@pytest.mark.parametrize("order", [
    dosed_ivig_order(400, "mg/kg", **FIVE_DAYS),
    dosed_ivig_order(400, "mg/kg/d", **FIVE_DAYS),
    dosed_ivig_order(0.4, "g/kg/d", **FIVE_DAYS),
    dosed_ivig_order(400, "mg/kg/day", code=None, **FIVE_DAYS),               # the unit word alone
    dosed_ivig_order(28000, "mg", **FIVE_DAYS),
    dosed_ivig_order(28, "g", period=24, periodUnit="h", **FIVE_DAYS),         # every 24 hours
    dosed_ivig_order(14, "g", period=12, periodUnit="h", **FIVE_DAYS),         # every 12 hours: 2 doses a day
    dosed_ivig_order(28, "g", boundsDuration=duration(5, "days", code=None)),  # the unit word, no UCUM code
    dosed_ivig_order(28, "g", boundsDuration=duration(5, "Day", code=None)),
    dosed_ivig_order(28, "g", boundsPeriod={"start": days_ago(0) + "T08:00:00-05:00", "end": days_ago(-4) + "T20:00:00-05:00"}),
    dosed_ivig_order(28, "g", boundsPeriod={"start": days_ago(0) + "T00:00:00Z", "end": days_ago(-5) + "T00:00:00Z"}),
    dosed_ivig_order(28, "g", count=5),
], ids=["mg/kg", "mg/kg/d", "g/kg/d", "mg/kg/day-word", "mg", "q24h", "q12h", "days-word", "Day-word",
        "dates-with-times", "midnight-to-midnight", "count"])
def test_a_dose_and_schedule_written_as_ehrs_write_them_is_read(cards_by_topic, order):
    card = gbs1(cards_by_topic, order, [weight(70)])
    assert card["indicator"] == "info" and "suggestions" not in card
    assert "this follows the guideline's regimen" in card["detail"]


@pytest.mark.parametrize("order", [
    dosed_ivig_order(4000, "mg/kg", **FIVE_DAYS),
    dosed_ivig_order(4000, "mg/kg/d", **FIVE_DAYS),
    dosed_ivig_order(140, "g", period=12, periodUnit="h", **FIVE_DAYS),
    dosed_ivig_order(280, "g", boundsDuration=duration(5, "days", code=None)),
    dosed_ivig_order(280, "g", boundsPeriod={"start": days_ago(0) + "T08:00:00-05:00", "end": days_ago(-4) + "T20:00:00-05:00"}),
], ids=["mg/kg", "mg/kg/d", "q12h", "days-word", "dates-with-times"])
def test_a_tenfold_dose_written_as_ehrs_write_it_is_critical(cds, order):
    cards = cds(hook_request([order], hook="order-sign", prefetch=prefetch(conditions=[gbs()], weights=[weight(70)])))
    (card,) = [c for c in cards if c["indicator"] != "info"]
    assert card["indicator"] == "critical" and HIGHEST in stated_topics(card)
    assert card["summary"].startswith("IVIG draft: about 10 times the guideline's course total")
    assert "4 g/kg/day (280 g/day) for 5 days, 20 g/kg (1400 g) in total" in card["detail"]


LOCAL_UNITS = "urn:oid:1.2.840.114350.1.13.0.1.7.4.698288.400"  # an EHR's own unit codes (Epic-style OID)


@pytest.mark.parametrize("daily_g, unit, indicator", [
    (28, {"unit": "gram"}, None), (28, {"unit": "g", "system": LOCAL_UNITS, "code": "GM"}, None),
    (280, {"unit": "g", "system": LOCAL_UNITS, "code": "GM"}, "critical"), (280, {"unit": "grams"}, "critical"),
], ids=["gram-word", "local-code", "10x-local-code", "10x-grams-word"])
def test_a_dose_in_a_local_unit_code_is_read_by_its_unit_word(cards_by_topic, daily_g, unit, indicator):
    """A code outside UCUM's system means nothing to the service, so the unit word says the unit: 280 g under an EHR's
    own code "GM" is a 10-fold course, not a dose that "cannot be read"."""
    order = dosed_ivig_order(daily_g, None, code=None, **FIVE_DAYS)
    order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"].update(unit)
    cards = cards_by_topic(order=order, hook="order-sign", conditions=[gbs()])
    assert UNREADABLE not in cards
    assert (cards["GBS-1"]["indicator"] if "GBS-1" in cards else None) == indicator


def _quantity(value: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def test_a_dose_written_both_in_grams_and_per_kg_is_checked_by_the_larger(cards_by_topic):
    """An "ordered" 0.4 g/kg beside a "calculated" 280 g: one is wrong, and the one that harms is what must be seen."""
    order = dosed_ivig_order(0.4, "g/kg", **FIVE_DAYS)
    order["dosageInstruction"][0]["doseAndRate"].append({"doseQuantity": _quantity(280, "g")})
    card = cards_by_topic(order=order, hook="order-sign", conditions=[gbs()])["GBS-1"]
    assert card["indicator"] == "critical" and "20 g/kg (1400 g) in total" in card["detail"]


def _in_parts(*parts: tuple[float, int], rate_only: bool = False) -> dict:
    """An IVIG draft whose course is several dosage instructions, each (grams a day, days); `rate_only` adds an
    instruction that states only an infusion rate, as a titration protocol does."""
    order = ivig_order()
    order["dosageInstruction"] = [{"sequence": n, "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "count": days}},
                                   "doseAndRate": [{"doseQuantity": _quantity(grams, "g")}]}
                                  for n, (grams, days) in enumerate(parts, 1)]
    if rate_only:
        order["dosageInstruction"].append({"sequence": 1, "text": "Start at 0.5 mL/kg/h; increase every 30 min as tolerated",
                                           "doseAndRate": [{"rateQuantity": _quantity(0.5, "mL/(kg.h)")}]})
    return order


def test_every_dosage_instruction_of_an_order_is_part_of_its_course(cards_by_topic):
    """FHIR writes a dose that changes over the course as several instructions: a 10-fold second part is a 10-fold
    course, not "80 % below" (only the first instruction was read)."""
    card = cards_by_topic(order=_in_parts((28, 1), (280, 4)), hook="order-sign", conditions=[gbs()])["GBS-1"]
    assert card["indicator"] == "critical"
    assert "The draft order's 2 dosage instructions together give 16.4 g/kg (1148 g) in total" in card["detail"]
    as_guideline = cards_by_topic(order=_in_parts((28, 1), (28, 4), rate_only=True), hook="order-sign", conditions=[gbs()])
    assert not {"GBS-1", UNREADABLE, HIGHEST} & set(as_guideline)  # 5 x 28 g; a rate titration is no part of the amount


GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"


def _timed(timing: dict) -> dict:
    """28 g a dose for 5 days, how often written only in `timing` (no frequency or period)."""
    order = dosed_ivig_order(28, "g")
    order["dosageInstruction"][0]["timing"] = {**timing, "repeat": {**timing.get("repeat", {}), **FIVE_DAYS}}
    return order


@pytest.mark.parametrize("timing", [
    {"code": {"coding": [{"system": GTS, "code": "BID"}]}}, {"code": {"text": "Q12H"}}, {"code": {"text": "twice daily"}},
    {"repeat": {"timeOfDay": ["08:00:00", "20:00:00"]}}, {"repeat": {"when": ["MORN", "EVE"]}},
], ids=["BID-code", "Q12H-text", "twice-daily-words", "two-times-of-day", "morning-and-evening"])
def test_a_schedule_given_by_its_code_or_its_times_of_day_is_read(cards_by_topic, timing):
    """Twice a day written without frequency and period is twice a day (it was read as once a day: 28 g twice a day
    for 5 days, 4 g/kg, got no card at signing)."""
    card = cards_by_topic(order=_timed(timing), hook="order-sign", conditions=[gbs()])["GBS-1"]
    assert card["indicator"] == "critical" and "0.8 g/kg/day (56 g/day) for 5 days" in card["detail"]


def test_a_schedule_code_the_service_does_not_read_is_unreadable_not_once_a_day(cards_by_topic):
    cards = cards_by_topic(order=_timed({"code": {"text": "with dialysis"}}), hook="order-sign", conditions=[gbs()])
    assert "the schedule is a code (with dialysis) without a frequency and period the service reads" in cards[UNREADABLE]["detail"]
    once = cards_by_topic(order=_timed({"code": {"coding": [{"system": GTS, "code": "QD"}]}}), hook="order-sign", conditions=[gbs()])
    assert not {"GBS-1", UNREADABLE} & set(once)


def test_a_dose_repeated_every_few_days_is_not_rounded_before_it_is_added_up(cards_by_topic):
    """28 g every 3 days for 15 days is 140 g: 9.33 g/day rounded to 9.3 would make it 139.5 g (1.99 g/kg)."""
    card = gbs1(cards_by_topic, dosed_ivig_order(28, "g", period=3, boundsDuration=duration(15, "d")), [weight(70)])
    assert "for 15 days, 2 g/kg (140 g) in total" in card["detail"]
    assert card["summary"].startswith("IVIG draft: 67 % below the guideline's daily dose, 10 days longer")


def _rate_only() -> dict:
    """An infusion written as its rate alone (the card said "dose or length not stated" and listed nothing)."""
    order = dosed_ivig_order(28, "g", **FIVE_DAYS)
    order["dosageInstruction"][0]["doseAndRate"] = [{"rateQuantity": {"value": 100, "unit": "mL/h", "system": UCUM, "code": "mL/h"}}]
    return order


@pytest.mark.parametrize("order, reason", [
    (dosed_ivig_order(280, "mL", **FIVE_DAYS), "the dose is a volume, 280 mL, and the grams it holds depend on the product's"),
    (dosed_ivig_order(2800, "mL", **FIVE_DAYS), "the dose is a volume, 2800 mL"),
    (dosed_ivig_order(28, "g", period=5, periodUnit="h", **FIVE_DAYS), "1 dose(s) every 5 h is no whole number of doses a day"),
    (dosed_ivig_order(28, "g", period=36, periodUnit="h", **FIVE_DAYS), "1 dose(s) every 36 h is no whole number of doses a day"),
    (dosed_ivig_order(28, "g", frequencyMax=2, **FIVE_DAYS), "the schedule is a range"),
    (dosed_ivig_order(0.4, "g/kg/d", period=2, **FIVE_DAYS), "a dose per day on a schedule of one dose every 2 days is ambiguous"),
    (dosed_ivig_order(2, "{vial}", **FIVE_DAYS), "the dose is in {vial} (2 {vial}), not in g, mg or g/kg"),
    (dosed_ivig_order(28000, "mg", code="g", **FIVE_DAYS), "the dose's unit code (g) and its unit as written (mg) disagree"),
    (_rate_only(), "the order states an infusion rate (100 mL/h), not a dose: what it gives depends on how long it runs"),
], ids=["mL", "10x-mL", "every-5-h", "every-36-h", "frequency-range", "per-day-every-2-days", "vials", "code-g-written-mg",
        "rate-only"])
def test_a_dose_that_cannot_be_read_unambiguously_says_what_could_not_be_read(cds, order, reason):
    """Never a guess: a dose in mL holds as many grams as the product's concentration says, and the service does not
    assume one. The card says what could not be read, so the pharmacist sees it."""
    for hook in ("order-select", "order-sign"):
        cards = cds(hook_request([order], hook=hook, prefetch=prefetch(conditions=[gbs()], weights=[weight(70)])))
        by_topic = {c["source"]["topic"]["code"]: c for c in cards}
        shown = by_topic[UNREADABLE if hook == "order-sign" else "GBS-1"]
        assert reason in shown["detail"]
        assert not any(c["indicator"] == "critical" for c in cards)


@pytest.mark.parametrize("order, reason", [
    (ivig_order(daily_g=-28, days=5), "the dose (-28 g) is not a positive amount"),
    (ivig_order(daily_g=0, days=5), "the dose (0 g) is not a positive amount"),
    (ivig_order(daily_g=28, days=0), "the duration (0 d) is not a positive number of days"),
    (ivig_order(daily_g=28, days=-5), "the duration (-5 d) is not a positive number of days"),
    (dosed_ivig_order(28, "g", count=0), "the number of doses (0) is not a positive whole number"),
    (dosed_ivig_order(28, "g", frequency=0, **FIVE_DAYS), "the frequency (0) is not a positive whole number"),
    (dosed_ivig_order("28", "g", **FIVE_DAYS), "the dose (28 g) is written as text, not as a number"),
], ids=["negative-dose", "zero-dose", "zero-days", "negative-days", "zero-count", "zero-frequency", "dose-as-text"])
def test_a_dose_or_length_that_is_not_positive_is_unreadable_not_a_departure(cards_by_topic, order, reason):
    cards = cards_by_topic(order=order, hook="order-sign", conditions=[gbs()])
    assert "GBS-1" not in cards  # no "200 % below the guideline's course total"
    assert cards[UNREADABLE]["indicator"] == "warning" and reason in cards[UNREADABLE]["detail"]


def two_drafts(daily_g: float, days: int) -> tuple[dict, dict]:
    return ivig_order(id="ivig-1", daily_g=daily_g, days=days), ivig_order(id="ivig-2", daily_g=daily_g, days=days)


def test_two_drafts_signed_together_are_one_course(cds):
    first, second = two_drafts(28, 5)
    cards = cds(hook_request([first, second], hook="order-sign", prefetch=prefetch(conditions=[gbs()], weights=[weight(70)])))
    (card,) = [c for c in cards if c["source"]["topic"]["code"] == "GBS-1"]  # one card for the course, not one per draft
    assert card["summary"].startswith("IVIG draft: about 2 times the guideline's course total")
    assert "The 2 IVIG draft orders together give 4 g/kg (280 g) in total" in card["detail"]
    assert card["indicator"] == "critical" and HIGHEST in stated_topics(card)  # 4 g/kg: above any regimen
    for suggestion in card["suggestions"]:  # accepting one leaves exactly one course
        actions = suggestion["actions"]
        assert [a["type"] for a in actions] == ["update", "delete"]
        assert actions[0]["resource"]["id"] == "ivig-1" and actions[1]["resourceId"] == ["MedicationRequest/ivig-2"]


def test_a_course_split_over_two_drafts_that_adds_up_to_the_regimen_is_not_wrong(cards_by_topic):
    """At signing only what is wrong is said: two drafts that together follow the regimen get no card."""
    first, second = two_drafts(14, 5)
    cards = cards_by_topic(order=first, others=[second], hook="order-sign", conditions=[gbs()])
    assert "GBS-1" not in cards and HIGHEST not in cards


def test_selecting_one_draft_of_a_split_course_counts_the_other_drafts(cards_by_topic):
    """order-select: the session's other IVIG drafts are context, and the same course. Selecting one of two 14 g drafts
    is not "50 % below" (whose one-click regimen would have made the two drafts a 1.5-fold course); selecting a second
    full course beside the first is the double course it is, and the regimen offered replaces both."""
    first, second = two_drafts(14, 5)
    card = cards_by_topic(order=first, others=[second], conditions=[gbs()])["GBS-1"]
    assert card["indicator"] == "info" and "The 2 IVIG draft orders together give 2 g/kg (140 g) in total" in card["detail"]
    first, second = two_drafts(28, 5)
    card = cards_by_topic(order=second, others=[first], conditions=[gbs()])["GBS-1"]
    assert card["indicator"] == "critical"
    (action, removal) = card["suggestions"][0]["actions"]
    assert action["resource"]["id"] == "ivig-2" and removal["resourceId"] == ["MedicationRequest/ivig-1"]


def test_two_drafts_without_ids_get_no_suggestion_that_would_add_a_course(cards_by_topic):
    first, second = two_drafts(28, 5)
    del first["id"], second["id"]
    body_cards = cards_by_topic(order=first, others=[second], hook="order-sign", conditions=[gbs()])
    assert "suggestions" not in body_cards["GBS-1"]


UNREADABLE = "SAFE-order-unreadable"


def sandbox_style_order() -> dict:
    """What the CDS Hooks Sandbox's Rx View drafts: one '{pill}' a day, a 30-day supply, category as an object."""
    order = ivig_order(id="request-123")
    order.update(
        category={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "outpatient"}]},
        dosageInstruction=[{"text": "1 {pill} daily", "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "{pill}", "system": UCUM, "code": "{pill}"}}]}],
        dispenseRequest={"numberOfRepeatsAllowed": 2, "quantity": {"value": 30, "unit": "{pill}"},
                         "expectedSupplyDuration": {"value": 30, "unit": "days", "system": UCUM, "code": "d"}},
    )
    return order


@pytest.mark.parametrize("order", [sandbox_style_order(), ivig_order(), ivig_order(daily_g=28), ivig_order(days=5)],
                         ids=["sandbox-pill", "no-dosage", "no-days", "no-dose"])
def test_an_order_whose_dose_cannot_be_read_is_said_to_be_unreadable_at_signing(cards_by_topic, order):
    card = cards_by_topic(order=order, hook="order-sign", conditions=[gbs()])[UNREADABLE]
    assert card["indicator"] == "warning" and card["overrideReasons"]
    assert UNREADABLE not in cards_by_topic(order=order, hook="order-select", conditions=[gbs()])


def test_a_readable_order_is_not_called_unreadable(cards_by_topic):
    assert UNREADABLE not in cards_by_topic(order=ivig_order(daily_g=28, days=5), hook="order-sign", conditions=[gbs()])


# --- a weight you can trust ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("birth_date, measured_days_ago, current, said", [
    ("1970-05-01", 3, True, "measured 3 days ago"),
    ("1970-05-01", 90, True, "measured 90 days ago"),
    ("1970-05-01", 200, False, "older than the 90-day limit for adults"),
    (days_ago(365 * 10), 20, True, "measured 20 days ago"),
    (days_ago(365 * 10), 45, False, "older than the 30-day limit for children"),
], ids=["adult-recent", "adult-at-limit", "adult-old", "child-recent", "child-old"])
def test_an_old_weight_shows_the_arithmetic_but_gives_no_dose(client, birth_date, measured_days_ago, current, said):
    body = hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=[weight(70, when=days_ago(measured_days_ago))],
                                                          patient_resource=patient(birth_date)))
    card = next(c for c in client.post("/cds-services/ivig-order-select", json=body).get_json()["cards"]
                if "GBS-1" in stated_topics(c))  # a child's card states GBS-1 with GBS-2 and GBS-5
    assert said in card["detail"]
    assert "0.4 g/kg/day × 70 kg = 28 g/day for 5 days" in card["detail"]
    assert ("suggestions" in card) is current
    if not current:
        assert "record a current weight" in card["detail"]


@pytest.mark.parametrize("birth_date, value, unit, plausible", [
    ("1970-05-01", 1e-300, "kg", False),
    ("1970-05-01", 0.004, "kg", False),
    ("1970-05-01", 5000, "kg", False),
    ("1970-05-01", 1e9, "kg", False),
    ("1970-05-01", 15, "kg", False),             # below the adult range: a child's weight typed into an adult's record
    ("1970-05-01", 1000, "[lb_av]", False),       # 453.6 kg
    ("1970-05-01", 23, "kg", True),
    ("1970-05-01", 340, "kg", True),
    (days_ago(20), 3.1, "kg", True),              # a newborn
    (days_ago(365 * 6), 15, "kg", True),          # a child of six
    (days_ago(365 * 6), 0.2, "kg", False),
    ("2999-01-01", 0.2, "kg", False),             # a birth date in the future is no age: the children's range applies
], ids=lambda v: str(v))
def test_an_implausible_weight_gives_no_dose_and_asks_to_check_it(client, birth_date, value, unit, plausible):
    body = hook_request([ivig_order(daily_g=28, days=5)], hook="order-sign",
                        prefetch=prefetch(conditions=[gbs()], weights=[weight(value, unit, when=days_ago(1))],
                                          patient_resource=patient(birth_date)))
    cards = client.post("/cds-services/ivig-order-sign", json=body).get_json()["cards"]
    by_topic = {c["source"]["topic"]["code"]: c for c in cards}
    if plausible:
        assert "SAFE-weight" not in by_topic
    else:
        weight_card = by_topic["SAFE-weight"]
        assert "plausible range" in weight_card["detail"] and "not the guideline's" in weight_card["detail"]
        assert "check the weight" in weight_card["detail"]
        assert not any("suggestions" in c for c in cards)
        assert not any(re.search(r"= \d[\d.]* g/day", c["detail"]) for c in cards)  # no absolute dose anywhere


@pytest.mark.parametrize("birth_date", ["2999-01-01", "1850-01-01"])
def test_an_impossible_birth_date_is_no_age(client, birth_date):
    """A child-only recommendation (GBS-5) must not fire on a birth date in the future or 170 years ago."""
    body = hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=[weight(70, when=days_ago(1))],
                                                          patient_resource=patient(birth_date)))
    cards = client.post("/cds-services/ivig-order-select", json=body).get_json()["cards"]
    assert "GBS-5" not in {c["source"]["topic"]["code"] for c in cards}
    assert not any("Age:" in c["detail"] for c in cards)


def test_an_undated_weight_gives_no_dose(cards_by_topic):
    undated = weight(70)
    del undated["effectiveDateTime"]
    card = gbs1(cards_by_topic, ivig_order(), [undated], hook="order-select")
    assert "suggestions" not in card and "date of measurement not recorded" in card["detail"]


# --- suggestions that are valid orders ----------------------------------------------------------------------------


def test_the_suggestion_keeps_the_draft_and_drops_what_contradicts_the_course(cards_by_topic):
    draft = sandbox_style_order()
    draft["encounter"] = {"reference": "Encounter/enc-1"}
    card = gbs1(cards_by_topic, draft, [weight(70)], hook="order-select")
    (suggestion, *_) = card["suggestions"]
    (action,) = suggestion["actions"]
    resource = action["resource"]
    assert action["type"] == "update" and resource["id"] == draft["id"]
    assert resource["medicationCodeableConcept"] == draft["medicationCodeableConcept"]
    assert resource["subject"] == draft["subject"] and resource["encounter"] == draft["encounter"]
    assert "dispenseRequest" not in resource and "category" not in resource
    (instruction,) = resource["dosageInstruction"]
    assert instruction["route"]["coding"][0]["code"] == "47625008"
    assert instruction["timing"]["repeat"]["boundsDuration"]["value"] == 5


def _ranged(low: dict, high: dict) -> dict:
    order = dosed_ivig_order(28, "g", **FIVE_DAYS)
    order["dosageInstruction"][0]["doseAndRate"] = [{"doseRange": {"low": low, "high": high}}]
    return order


def _grams(value: float, code: str = "g") -> dict:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


@pytest.mark.parametrize("low", [_grams(28), _grams(28000, "mg")], ids=["28-28-g", "28000-mg-28-g"])
def test_a_dose_range_whose_ends_are_the_same_amount_is_that_dose(cds, low):
    """Some EHRs send every dose as a range: 28-28 g is 28 g (it was unreadable), read like the dose written once."""
    body = prefetch(conditions=[gbs()], weights=[weight(70)])
    assert cds(hook_request([_ranged(low, _grams(28))], hook="order-sign", prefetch=body)) == []
    tenfold = cds(hook_request([_ranged(_grams(280), _grams(280))], hook="order-sign", prefetch=body))
    (card,) = [c for c in tenfold if HIGHEST in stated_topics(c)]
    assert card["indicator"] == "critical" and not [c for c in tenfold if UNREADABLE in stated_topics(c)]


@pytest.mark.parametrize("low, high, written", [(_grams(20), _grams(28), "20 g to 28 g"),
                                                (_grams(28), {}, "28 g to no end")], ids=["20-28-g", "no-high"])
def test_a_dose_range_with_different_ends_stays_unreadable_and_says_the_range(cds, low, high, written):
    """Neither end is guessed (not even the higher): the pharmacist is asked for the one amount to give."""
    order = _ranged(low, high)
    if not high:
        del order["dosageInstruction"][0]["doseAndRate"][0]["doseRange"]["high"]
    cards = cds(hook_request([order], hook="order-sign", prefetch=prefetch(conditions=[gbs()], weights=[weight(70)])))
    (card,) = [c for c in cards if c["source"]["topic"]["code"] == UNREADABLE]
    assert f"the dose is a range ({written}), not one amount" in card["detail"]
