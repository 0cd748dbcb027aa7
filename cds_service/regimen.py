"""Dose arithmetic: a guideline regimen, applied to a dosing weight and compared with a draft order.

A regimen is what the guideline states per kilogram ("0.4 g/kg/day for 5 days"); it lives in an
ActivityDefinition. The absolute course (28 g/day for 5 days) exists only once a body weight is
known, and the comparison with a draft order works in g/kg so that it also works without one.
Decimal arithmetic throughout: these figures end up on a medication order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from .fhirjson import number, obj, objects, recorded_at, text

UCUM = "http://unitsofmeasure.org"
POUND_IN_KG = Decimal("0.45359237")
_GRAMS_PER_UNIT = {"g": Decimal(1), "mg": Decimal("0.001"), "kg": Decimal(1000)}
_DAYS_PER_UNIT = {"d": 1, "wk": 7}
_LONGEST_COURSE_DAYS = 366  # a longer "course" is not a course; read it as unknown rather than compute with it


class RegimenError(ValueError):
    """An ActivityDefinition whose dosage is not a daily per-kg course we can compute."""


@dataclass(frozen=True)
class DosingWeight:
    """The patient's latest body weight, in kg, and when it was measured."""

    kg: Decimal
    measured: str | None
    stated: str  # as recorded, e.g. "154 [lb_av]"


@dataclass(frozen=True)
class Regimen:
    """A course as the guideline states it: a daily dose per kg for a number of days."""

    definition_url: str
    dose_per_kg_per_day: Decimal
    days: int

    @property
    def total_per_kg(self) -> Decimal:
        return self.dose_per_kg_per_day * self.days

    def daily_grams(self, weight: DosingWeight) -> Decimal:
        return _round(self.dose_per_kg_per_day * weight.kg)

    def describe(self) -> str:
        return f"{fmt(self.dose_per_kg_per_day)} g/kg/day for {days_text(self.days)} ({fmt(self.total_per_kg)} g/kg in total)"

    def arithmetic(self, weight: DosingWeight) -> str:
        daily = self.daily_grams(weight)
        return (
            f"{fmt(self.dose_per_kg_per_day)} g/kg/day × {fmt(weight.kg)} kg = {fmt(daily)} g/day "
            f"for {days_text(self.days)}, {fmt(daily * self.days)} g in total"
        )


def describe_all(regimens: Sequence[Regimen]) -> str:
    """The regimens as the guideline words them: "2 g/kg over 2–5 days" when they are the ends of a range."""
    totals = {r.total_per_kg for r in regimens}
    if len(regimens) > 1 and len(totals) == 1:
        days = sorted(r.days for r in regimens)
        return f"{fmt(totals.pop())} g/kg over {days[0]}–{days[-1]} days"
    return " or ".join(r.describe() for r in regimens)


def regimen_from_activity(activity: Mapping[str, Any]) -> Regimen:
    """Read the per-kg daily dose and course length from an ActivityDefinition's dosage.

    Expected shape (CPG-on-FHIR): dosage[0].doseAndRate with type `ordered` and doseQuantity in
    UCUM g/kg; dosage[0].timing.repeat once a day (frequency 1, period 1 d) bounded by a
    duration in days.
    """
    try:
        dosage = activity["dosage"][0]
        dose = next(
            d["doseQuantity"]
            for d in dosage["doseAndRate"]
            if any(c.get("code") == "ordered" for c in d.get("type", {}).get("coding", []))
        )
        repeat = dosage["timing"]["repeat"]
        bounds = repeat["boundsDuration"]
    except (KeyError, IndexError, StopIteration, TypeError) as exc:
        raise RegimenError(f"dosage lacks {exc}: need doseAndRate(type ordered), timing.repeat.boundsDuration") from exc
    if dose.get("system") != UCUM or dose.get("code") != "g/kg":
        raise RegimenError("ordered dose must be in UCUM g/kg")
    if (repeat.get("frequency"), repeat.get("period"), repeat.get("periodUnit")) != (1, 1, "d"):
        raise RegimenError("timing must be once a day (frequency 1, period 1, periodUnit d)")
    if bounds.get("code") != "d" or int(bounds["value"]) != bounds["value"]:
        raise RegimenError("boundsDuration must be a whole number of days (UCUM d)")
    return Regimen(activity["url"], Decimal(str(dose["value"])), int(bounds["value"]))


def dosing_weight(observation: Mapping[str, Any]) -> DosingWeight | None:
    """Body weight in kg from an Observation in kg or [lb_av]; None when the unit is anything else."""
    quantity = obj(observation.get("valueQuantity"))
    unit = text(quantity.get("code")) or text(quantity.get("unit"))
    value = number(quantity.get("value"))
    if value is None or value <= 0 or unit not in ("kg", "[lb_av]"):
        return None
    kg = value if unit == "kg" else value * POUND_IN_KG
    return DosingWeight(kg, recorded_at(observation), f"{fmt(value)} {unit}")


@dataclass(frozen=True)
class DraftDosage:
    """What a draft order says about its course, as far as it says it."""

    daily_grams: Decimal | None = None
    daily_per_kg: Decimal | None = None  # when the order itself is written per kg
    days: int | None = None

    def per_kg_per_day(self, weight: DosingWeight | None) -> Decimal | None:
        if self.daily_per_kg is not None:
            return self.daily_per_kg
        if self.daily_grams is not None and weight is not None:
            return self.daily_grams / weight.kg
        return None

    def grams_per_day(self, weight: DosingWeight | None) -> Decimal | None:
        if self.daily_grams is not None:
            return self.daily_grams
        if self.daily_per_kg is not None and weight is not None:
            return _round(self.daily_per_kg * weight.kg)
        return None


def draft_dosage(order: Mapping[str, Any]) -> DraftDosage:
    """Daily dose and number of days of a MedicationRequest's first dosage instruction, as far as it says."""
    instructions = objects(order.get("dosageInstruction"))
    if not instructions:
        return DraftDosage()
    instruction = instructions[0]
    repeat = obj(obj(instruction.get("timing")).get("repeat"))
    per_day = _administrations_per_day(repeat)
    grams = per_kg = None
    for dose_and_rate in objects(instruction.get("doseAndRate")):
        quantity = obj(dose_and_rate.get("doseQuantity"))
        value = number(quantity.get("value"))
        unit = text(quantity.get("code")) or text(quantity.get("unit"))
        if value is None or per_day is None:
            continue
        if unit in _GRAMS_PER_UNIT and grams is None:
            grams = _round(value * _GRAMS_PER_UNIT[unit] * per_day)
        elif unit == "g/kg" and per_kg is None:
            per_kg = value * per_day
    return DraftDosage(grams, per_kg, _course_days(repeat, per_day))


def _administrations_per_day(repeat: dict) -> Decimal | None:
    frequency = number(repeat.get("frequency", 1))
    period = number(repeat.get("period", 1 if "periodUnit" not in repeat else None))
    days = _DAYS_PER_UNIT.get(text(repeat.get("periodUnit", "d")) or "")
    if not frequency or not period or days is None or frequency < 0 or period < 0:
        return None
    return frequency / (period * days)


def _course_days(repeat: dict, per_day: Decimal | None) -> int | None:
    bounds = obj(repeat.get("boundsDuration"))
    value = number(bounds.get("value"))
    days = _DAYS_PER_UNIT.get(text(bounds.get("code")) or text(bounds.get("unit")) or "")
    if value is not None and days is not None:
        return _whole(value * days)
    count = number(repeat.get("count"))
    if count is not None and per_day:
        return _whole(count / per_day)
    period = obj(repeat.get("boundsPeriod"))
    try:
        start = date.fromisoformat(str(period["start"]))
        end = date.fromisoformat(str(period["end"]))
    except (KeyError, ValueError):
        return None
    return (end - start).days + 1 if end >= start else None


@dataclass(frozen=True)
class Comparison:
    """How a draft order stands against a recommendation's regimens."""

    conforms: bool | None  # None: the draft does not say enough to tell
    statement: str  # one sentence for the card


def compare(draft: DraftDosage, regimens: Sequence[Regimen], weight: DosingWeight | None, tolerance: Decimal) -> Comparison:
    """Does the draft course match one of the regimens (or lie within the range they span)?

    Alternatives such as "2 g/kg in 2-5 days" are shipped as their end points (1 g/kg/day x 2,
    0.4 g/kg/day x 5). A draft that gives the same total over a number of days between them
    (0.5 g/kg/day x 4) follows the guideline too, so it conforms.
    """
    per_kg = draft.per_kg_per_day(weight)
    days = draft.days
    missing = []
    if per_kg is None:
        missing.append("a daily dose" + ("" if weight or draft.daily_grams is None else " per kg (no body weight)"))
    if days is None:
        missing.append("a number of days")
    if missing:
        return Comparison(None, f"The draft order does not state {' or '.join(missing)}, so it cannot be checked against the regimen.")

    def close(a: Decimal, b: Decimal) -> bool:
        return abs(a - b) <= tolerance * b

    totals = {r.total_per_kg for r in regimens}
    spans_range = len(totals) == 1 and min(r.days for r in regimens) <= days <= max(r.days for r in regimens)
    matches = any(close(per_kg, r.dose_per_kg_per_day) and days == r.days for r in regimens) or (
        spans_range and close(per_kg * days, next(iter(totals)))
    )
    grams = draft.grams_per_day(weight)
    course = f"{fmt(per_kg)} g/kg/day" + (f" ({fmt(grams)} g/day)" if grams is not None else "")
    drafted = f"The draft order gives {course} for {days_text(days)}, {fmt(per_kg * days)} g/kg in total"
    if matches:
        return Comparison(True, f"{drafted}: this follows the guideline's regimen.")
    return Comparison(False, f"{drafted}; the guideline's regimen is {describe_all(regimens)}.")


def days_text(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def fmt(value: Decimal) -> str:
    """A dose as a clinician writes it: 28, 0.4, 27.9 — no trailing zeros, at most 2 decimals."""
    text = f"{value.quantize(Decimal('0.01')):f}".rstrip("0").rstrip(".")
    return text or "0"


def _round(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.1"))


def _whole(value: Decimal) -> int | None:
    return int(value) if value == value.to_integral_value() and 0 < value <= _LONGEST_COURSE_DAYS else None
