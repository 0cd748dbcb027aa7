"""A draft order's dose and schedule, read as EHRs write them, and never read further than they say.

A 10-fold error is caught only when the dose is read, so the common ways of writing one are read: a dose in g, mg or
kg, per kg (g/kg, mg/kg) or per kg per day (g/kg/d, mg/kg/d); a frequency per period of minutes, hours, days or weeks
(without them, the times of day listed, or the timing's abbreviation: BID, Q12H); a course length as a duration (a
UCUM code, or when there is none the unit words d, day, days, wk, week, weeks), a count of doses, or start and end
dates (with or without times). A unit code counts only in UCUM's system; beside an EHR's own code ("GM"), the unit
word says the unit. Every dosage instruction that states a dose is a part of the course, and a dose written both in g
and per kg is read by the larger. What is ambiguous is not guessed: a dose in mL (the grams a mL holds depend on the
product), a range (one whose ends are the same amount is that amount), an amount that is not positive, a schedule
that gives no whole number of doses a day or is a code the service does not read. The draft then says in words what
could not be read, so a card can tell the pharmacist.

Maintenance: a draft that repeats its dose at intervals of MAINTENANCE_INTERVAL_DAYS or more is a maintenance schedule
(the guideline's typical maintenance regimens are 1 g/kg every 2–4 weeks or 2 g/kg every 4–8 weeks). Its course, the
one compared with the regimens and with the highest course total, is one treatment: the dose given on one day. How
often it repeats is stated, but the treatments of months are never added up into a "course".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from .fhirjson import UCUM, number, obj, objects, quantity_written, text

if TYPE_CHECKING:
    from .regimen import DosingWeight

#: doses repeated at least this many days apart are a maintenance schedule: each dose is one treatment
MAINTENANCE_INTERVAL_DAYS = 7
LONGEST_COURSE_DAYS = 366  # a longer "course" is not a course; read it as unknown rather than compute with it

_MASS = {"g": Decimal(1), "mg": Decimal("0.001"), "kg": Decimal(1000)}
_PER_KG = {"g/kg": Decimal(1), "mg/kg": Decimal("0.001")}
#: doses already per day, as UCUM codes and as the unit words written without a code
_MASS_PER_DAY = {"g/d": Decimal(1), "mg/d": Decimal("0.001"), "g/day": Decimal(1), "mg/day": Decimal("0.001")}
_PER_KG_PER_DAY = {"g/kg/d": Decimal(1), "mg/kg/d": Decimal("0.001"), "g/kg/day": Decimal(1), "mg/kg/day": Decimal("0.001")}
#: unit words EHRs write without a UCUM code (or beside a local one), in lower case, and the UCUM unit each names
_UNIT_WORDS = {"gm": "g", "gram": "g", "grams": "g", "milligram": "mg", "milligrams": "mg", "gm/kg": "g/kg", "gram/kg": "g/kg"}
_VOLUMES = {"ml", "l", "dl", "cl", "[foz_us]"}
#: timing.repeat.periodUnit (FHIR UnitsOfTime) in days; months and years are no fixed number of days
_PERIOD_DAYS = {"s": Fraction(1, 86400), "min": Fraction(1, 1440), "h": Fraction(1, 24), "d": Fraction(1), "wk": Fraction(7)}
#: boundsDuration: UCUM codes, and the unit words read when no code is given
_DURATION_CODES = {"h": Fraction(1, 24), "d": Fraction(1), "wk": Fraction(7)}
_DURATION_WORDS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7}


@dataclass(frozen=True)
class DraftDosage:
    """What a draft order says about its course, as far as it says it unambiguously.

    For a maintenance schedule the course is one treatment (days = 1, the daily dose = the treatment's dose), and
    `every_days`, `treatments` and `span_days` say how it repeats."""

    daily_grams: Decimal | None = None
    daily_per_kg: Decimal | None = None  # when the order itself is written per kg
    days: int | None = None
    every_days: Fraction | None = None  # a maintenance schedule: the days between treatments
    treatments: int | None = None  # a maintenance schedule: how many treatments, when the order counts them
    span_days: int | None = None  # a maintenance schedule: the days it runs for, when the order bounds it
    unreadable: tuple[str, ...] = ()  # what the order writes but cannot be read unambiguously, in words

    @property
    def dosed(self) -> bool:
        return self.daily_grams is not None or self.daily_per_kg is not None

    def per_kg_per_day(self, weight: DosingWeight | None) -> Decimal | None:
        """The daily dose per kg. An order that writes its dose both in g and per kg (an "ordered" 0.4 g/kg and a
        "calculated" 28 g) is read by the larger of the two at this weight: when they disagree, one of them is wrong,
        and the check must see the one that could harm (280 g beside 0.4 g/kg is a 10-fold dose, whichever was meant)."""
        per_kg = [d for d in (self.daily_per_kg, self.daily_grams / weight.kg if self.daily_grams is not None and weight else None)
                  if d is not None]
        return max(per_kg) if per_kg else None

    def grams_per_day(self, weight: DosingWeight | None) -> Decimal | None:
        """The daily dose in g; of a dose written both ways, the larger (see per_kg_per_day)."""
        grams = [g for g in (self.daily_grams, (self.daily_per_kg * weight.kg).quantize(Decimal("0.1"))
                             if self.daily_per_kg is not None and weight else None) if g is not None]
        return max(grams) if grams else None


@dataclass(frozen=True)
class _Schedule:
    per_day: Fraction | None  # doses a day
    interval_days: Fraction | None  # days from one dose to the next
    reason: str | None = None

    @property
    def maintenance(self) -> bool:
        return self.interval_days is not None and self.interval_days >= MAINTENANCE_INTERVAL_DAYS


@dataclass(frozen=True)
class _Dose:
    amount: Decimal  # in g, or in g/kg when per_kg
    per_kg: bool
    per_day: bool  # the amount is a day's dose, not one administration's


def draft_dosages(order: dict[str, Any]) -> tuple[DraftDosage, ...]:
    """Daily dose and number of days of each part of a MedicationRequest's course, as far as it says them: one per
    dosage instruction that states a dose (FHIR writes a dose that changes over the course, a loading day then
    maintenance days, as several instructions), or the first instruction when none does. An instruction that states
    only a rate, a route or words (an infusion-rate titration) is no part of the amount given."""
    instructions = objects(order.get("dosageInstruction"))
    parts = [i for i in instructions if any(k in d for d in objects(i.get("doseAndRate")) for k in ("doseQuantity", "doseRange"))]
    return tuple(_dosage(i) for i in parts or instructions[:1]) or (DraftDosage(),)


def _dosage(instruction: dict[str, Any]) -> DraftDosage:
    """Daily dose and number of days of one dosage instruction."""
    timing = obj(instruction.get("timing"))
    repeat = obj(timing.get("repeat"))
    schedule = _schedule(repeat, obj(timing.get("code")))
    doses, reasons = _doses(instruction)
    if schedule.reason:
        reasons.append(schedule.reason)
    daily: dict[bool, Decimal] = {}  # per kg or not -> the daily dose; of two that differ, the larger (see DraftDosage)
    for dose in doses:
        value = _daily(dose, schedule, reasons)
        if value is not None:
            daily[dose.per_kg] = max(value, daily.get(dose.per_kg, value))
    if schedule.maintenance:
        treatments = _count(repeat, reasons)
        span = _bounded_days(repeat, reasons)
        return DraftDosage(daily.get(False), daily.get(True), 1, schedule.interval_days, treatments, span, tuple(reasons))
    days = _course_days(repeat, schedule, reasons)
    return DraftDosage(daily.get(False), daily.get(True), days, unreadable=tuple(reasons))


def _daily(dose: _Dose, schedule: _Schedule, reasons: list[str]) -> Decimal | None:
    """A day's dose: one administration's times the doses a day, or a dose per day as written; on a maintenance
    schedule, the treatment's dose."""
    per_day = schedule.per_day
    if dose.per_day:
        if schedule.maintenance or (per_day is not None and per_day >= 1 and per_day.denominator == 1):
            return dose.amount
        if per_day is not None:
            reasons.append(f"a dose per day on a schedule of {_every(schedule.interval_days)} is ambiguous")
        return None
    if per_day is None:
        return None
    if schedule.maintenance:
        return dose.amount
    return dose.amount * per_day.numerator / per_day.denominator


def _doses(instruction: dict) -> tuple[list[_Dose], list[str]]:
    """The readable doses of the instruction's doseAndRate, and why the others cannot be read."""
    doses: list[_Dose] = []
    reasons: list[str] = []
    for dose_and_rate in objects(instruction.get("doseAndRate")):
        quantity = obj(dose_and_rate.get("doseQuantity")) if "doseQuantity" in dose_and_rate else _one_amount(
            obj(dose_and_rate.get("doseRange")))
        if not quantity:
            if "doseRange" in dose_and_rate:
                reasons.append(f"the dose is a range ({_range_written(obj(dose_and_rate.get('doseRange')))}), not one "
                               "amount: the dose to be given must be one amount to be checked")
            elif rate := _rate(dose_and_rate):
                reasons.append(f"the order states an infusion rate ({rate}), not a dose: what it gives depends on how long "
                               "it runs")
            continue
        value, code, word, written = _amount(quantity)
        dose = _dose(value, code, word)
        if value is None:
            as_text = isinstance(quantity.get("value"), str)
            reasons.append(f"the dose ({written}) {'is written as text, not as a number' if as_text else 'has no number'}")
        elif dose is None:
            reasons.append(_unit_reason(written, (code or word or "").lower()))
        elif value <= 0:
            reasons.append(f"the dose ({written}) is not a positive amount")
        elif code and word and (said := _dose(value, None, word)) is not None and said != dose:
            reasons.append(f"the dose's unit code ({code}) and its unit as written ({word}) disagree")  # 28 coded g, written mg
        else:
            doses.append(dose)
    if not doses and not reasons and "maxDosePerPeriod" in instruction:
        reasons.append("the order states only a maximum dose per period (maxDosePerPeriod), not a dose")
    return doses, reasons


def _amount(quantity: dict) -> tuple[Decimal | None, str | None, str | None, str]:
    """A dose Quantity's number, UCUM code, unit word and the amount as written ("28 g")."""
    value = number(quantity.get("value"))
    # a code means a UCUM unit only in UCUM's system: a local code ("GM" in an EHR's own system) is read by its words
    code = text(quantity.get("code")) if quantity.get("system") in (UCUM, None) else None
    word = text(quantity.get("unit"))
    return value, code, word, f"{_shown(value) if value is not None else quantity.get('value')!s} {code or word or ''}".strip()


def _one_amount(dose_range: dict) -> dict:
    """A range whose ends are the same amount (28-28 g, as some EHRs send every dose) is that amount: its low end.
    A range with different ends is none (empty): which end is meant is not guessed, not even the higher; the order is
    unreadable and the card asks for one amount, since a range is no dose a pharmacist can check or dispense."""
    low, high = obj(dose_range.get("low")), obj(dose_range.get("high"))
    if not low or not high:
        return {}
    ends = [_dose(*_amount(end)[:3]) for end in (low, high)]
    return low if ends[0] is not None and ends[0] == ends[1] else {}


def _range_written(dose_range: dict) -> str:
    ends = [_amount(obj(dose_range.get(end)))[3] if obj(dose_range.get(end)) else "no end" for end in ("low", "high")]
    return " to ".join(ends)


def _rate(dose_and_rate: dict) -> str | None:
    """An infusion rate as written ("100 mL/h"), from rateQuantity or rateRatio; None when there is none."""
    quantity = obj(dose_and_rate.get("rateQuantity"))
    if quantity:
        return quantity_written(quantity)
    ratio = obj(dose_and_rate.get("rateRatio"))
    if ratio:
        return f"{quantity_written(obj(ratio.get('numerator')))} per {quantity_written(obj(ratio.get('denominator')))}"
    return None


def _dose(value: Decimal | None, code: str | None, word: str | None) -> _Dose | None:
    """The dose in g or g/kg, per administration or per day, from a UCUM code (exact) or, without one, a unit word."""
    if value is None:
        return None
    unit = code if code else _UNIT_WORDS.get(written := (word or "").strip().lower(), written)
    for table, per_kg, per_day in ((_MASS, False, False), (_PER_KG, True, False),
                                   (_MASS_PER_DAY, False, True), (_PER_KG_PER_DAY, True, True)):
        if unit in table:
            return _Dose(value * table[unit], per_kg, per_day)
    return None


def _unit_reason(written: str, unit: str) -> str:
    if not unit:
        return f"the dose ({written}) has no unit"
    if unit in _VOLUMES:
        return (f"the dose is a volume, {written}, and the grams it holds depend on the product's concentration, which the "
                "service does not assume: write the dose in g")
    return f"the dose is in {unit} ({written}), not in g, mg or g/kg"


def _schedule(repeat: dict, code: dict) -> _Schedule:
    """Doses a day from frequency per period. Absent both, the times of day the repeat lists (timeOfDay, when: two are
    twice a day), else the timing's code (BID is twice a day: an abbreviation of HL7's timing-abbreviation ValueSet),
    else one dose a day; a code the service does not read makes the schedule unreadable rather than once a day.
    Periods under a day are read only when they give a whole number of doses a day or a whole number of days between
    doses (every 12 h, every 48 h; not every 5 h)."""
    if "frequencyMax" in repeat or "periodMax" in repeat:
        return _Schedule(None, None, "the schedule is a range (frequencyMax or periodMax)")
    frequency = number(repeat.get("frequency", 1))
    if "period" not in repeat and "periodUnit" not in repeat:
        period: Decimal | None = Decimal(1)
        unit: str | None = "d"
        times = len(set(_strings(repeat.get("timeOfDay"))) | set(_strings(repeat.get("when"))))
        if "frequency" not in repeat and times > 1:
            frequency = Decimal(times)
        elif "frequency" not in repeat and code:
            abbreviation = _abbreviation(code)
            if abbreviation is None:
                written = text(code.get("text")) or " ".join(str(c.get("code")) for c in objects(code.get("coding")))
                return _Schedule(None, None, f"the schedule is a code ({written}) without a frequency and period the service reads")
            frequency, period, unit = abbreviation
    else:
        period, unit = number(repeat.get("period")), text(repeat.get("periodUnit"))
    if frequency is None or frequency <= 0 or frequency != frequency.to_integral_value():
        return _Schedule(None, None, f"the frequency ({repeat.get('frequency')!s}) is not a positive whole number")
    if period is None or period <= 0:
        return _Schedule(None, None, f"the period ({repeat.get('period')!s}) is not a positive number")
    if unit not in _PERIOD_DAYS:
        return _Schedule(None, None, f"the period's unit ({unit or 'none'}) is not min, h, d or wk")
    period_days = Fraction(period) * _PERIOD_DAYS[unit]
    per_day, interval = Fraction(frequency) / period_days, period_days / Fraction(frequency)
    if (period_days < 1 and per_day.denominator != 1) or (period_days > 1 and unit in ("s", "min", "h") and interval.denominator != 1):
        return _Schedule(None, None, f"{_shown(frequency)} dose(s) every {_shown(period)} {unit} is no whole number of doses a day")
    return _Schedule(per_day, interval)


#: HL7 timing-abbreviation codes (v3 GTSAbbreviation) as frequency, period and period unit; Q<n>H and Q<n>D by pattern
_ABBREVIATIONS = {"QD": (1, 1, "d"), "AM": (1, 1, "d"), "PM": (1, 1, "d"), "BID": (2, 1, "d"), "TID": (3, 1, "d"),
                  "QID": (4, 1, "d"), "QOD": (1, 2, "d"),
                  # the same in the words EHRs put in the code's text
                  "DAILY": (1, 1, "d"), "ONCE DAILY": (1, 1, "d"), "TWICE DAILY": (2, 1, "d"), "THREE TIMES DAILY": (3, 1, "d")}
_EVERY_N = re.compile(r"Q(\d{1,3})([HD])")


def _abbreviation(code: dict) -> tuple[Decimal, Decimal, str] | None:
    """Frequency, period and unit of a timing code: a coding's code, or its text when that is an abbreviation ("BID")."""
    for written in [*(text(c.get("code")) for c in objects(code.get("coding"))), text(code.get("text"))]:
        abbreviation = (written or "").strip().upper()
        if abbreviation in _ABBREVIATIONS:
            frequency, period, unit = _ABBREVIATIONS[abbreviation]
            return Decimal(frequency), Decimal(period), unit
        if every := _EVERY_N.fullmatch(abbreviation):
            return Decimal(1), Decimal(every.group(1)), every.group(2).lower()
    return None


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _course_days(repeat: dict, schedule: _Schedule, reasons: list[str]) -> int | None:
    """The days the course runs: from boundsDuration or boundsPeriod, else from the count of doses."""
    days = _bounded_days(repeat, reasons)
    count = _count(repeat, reasons) if days is None else None
    if count is None or schedule.per_day is None:
        return days
    counted = Fraction(count) / schedule.per_day
    if counted.denominator != 1:
        reasons.append(f"{count} doses at {_shown(Decimal(schedule.per_day.numerator) / schedule.per_day.denominator)} a day "
                       "is not a whole number of days")
        return None
    return _days(Decimal(counted.numerator), f"{count} doses", reasons)


def _count(repeat: dict, reasons: list[str]) -> int | None:
    if "count" not in repeat:
        return None
    count = number(repeat.get("count"))
    if "countMax" in repeat:
        reasons.append("the number of doses is a range (countMax)")
    elif count is None or count <= 0 or count != count.to_integral_value():
        reasons.append(f"the number of doses ({repeat.get('count')!s}) is not a positive whole number")
    else:
        return int(count)
    return None


def _bounded_days(repeat: dict, reasons: list[str]) -> int | None:
    """The days a boundsDuration or a boundsPeriod spans; None when neither is given."""
    if "boundsDuration" in repeat:
        bounds = obj(repeat.get("boundsDuration"))
        value = number(bounds.get("value"))
        code = text(bounds.get("code")) if bounds.get("system") in (UCUM, None) else None  # a local code: its words decide
        word = text(bounds.get("unit"))
        per = _DURATION_CODES.get(code) if code else _DURATION_WORDS.get((word or "").strip().lower())
        written = f"{_shown(value) if value is not None else bounds.get('value')!s} {code or word or ''}".strip()
        if value is None or per is None:
            reasons.append(f"the duration ({written}) is not a number of days or weeks")
            return None
        days = Fraction(value) * per
        if days.denominator != 1:
            reasons.append(f"the duration ({written}) is not a whole number of days")
            return None
        return _days(Decimal(days.numerator), f"the duration ({written})", reasons)
    if "boundsPeriod" in repeat:
        period = obj(repeat.get("boundsPeriod"))
        start, end = _day(period.get("start")), _day(period.get("end"), end=True)
        if start is None or end is None:
            reasons.append("the start and end dates (boundsPeriod) cannot both be read")
            return None
        return _days(Decimal((end - start).days + 1), f"the dates {start} to {end}", reasons)
    return None


def _day(value: Any, *, end: bool = False) -> date | None:
    """The calendar day a date or dateTime names, as written (its own time zone). An end at 00:00 is the end of the day
    before: the period 1 June 00:00 to 6 June 00:00 is 5 days."""
    written = text(value)
    if written is None:
        return None
    try:
        if len(written) == 10:
            return date.fromisoformat(written)
        moment = datetime.fromisoformat(written)
    except ValueError:
        return None
    if end and moment.time() == time(0):
        return moment.date() - timedelta(days=1)
    return moment.date()


def _days(days: Decimal, what: str, reasons: list[str]) -> int | None:
    if days <= 0:
        reasons.append(f"{what} is not a positive number of days")
    elif days > LONGEST_COURSE_DAYS:
        reasons.append(f"{what} is longer than a year, no course")
    else:
        return int(days)
    return None


def _every(interval: Fraction | None) -> str:
    if interval is None:
        return "an unknown interval"
    days = Decimal(interval.numerator) / interval.denominator
    return "one dose a day" if interval == 1 else f"one dose every {_shown(days)} days"


def _shown(value: Decimal) -> str:
    """A number as written, without an exponent or trailing zeros (28, 0.4, -5)."""
    shown = f"{value:f}"
    return (shown.rstrip("0").rstrip(".") if "." in shown else shown) or "0"
