"""Dose arithmetic: a guideline regimen, applied to a dosing weight and compared with a draft order.

A regimen is what the guideline states per kilogram ("0.4 g/kg/day for 5 days"); it lives in an
ActivityDefinition. The absolute course (28 g/day for 5 days) exists only once a body weight is
known, and the comparison with a draft order works in g/kg so that it also works without one.
Decimal arithmetic throughout: these figures end up on a medication order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from .draft_dosage import DraftDosage
from .fhirjson import UCUM

POUND_IN_KG = Decimal("0.45359237")


class RegimenError(ValueError):
    """An ActivityDefinition whose dosage is not a daily per-kg course we can compute."""


@dataclass(frozen=True)
class DosingWeight:
    """The patient's latest body weight, in kg, and when it was measured."""

    kg: Decimal
    measured: str | None
    stated: str  # as recorded, e.g. "154 [lb_av]"

    def days_old(self, today: date) -> int | None:
        """Whole days since the weight was measured; None when the date is missing or unreadable."""
        try:
            return (today - date.fromisoformat(str(self.measured)[:10])).days
        except ValueError:
            return None


@dataclass(frozen=True)
class DosePolicy:
    """How far the service trusts a draft's dose and a recorded weight: the settings that decide a warning."""

    #: how far a draft's daily dose or course total may stray from the regimen before the card warns (0.10 = 10 %)
    tolerance: Decimal = Decimal("0.10")
    #: a weight older than this many days gives no one-click dose for an adult
    weight_max_age_days_adult: int = 90
    #: likewise for a child (under 18 years, or of unknown age): children's weight changes faster
    weight_max_age_days_child: int = 30
    #: adult body weights taken as real, in kg: the cut-offs of 50 and 750 lb that Chan & Raffa (2017) used to drop
    #: implausible weights from VA health records (reviewed in JMIR Med Inform 2022;10(3):e30328). Not the guideline's.
    plausible_weight_kg_adult: tuple[Decimal, Decimal] = (Decimal("22.7"), Decimal("340.2"))
    #: children and patients of unknown age: the service's policy (no standard source gives one range for every age);
    #: the low bound admits a newborn, the high bound is the adult one
    plausible_weight_kg_child: tuple[Decimal, Decimal] = (Decimal("0.3"), Decimal("340.2"))

    @property
    def heaviest_plausible_kg(self) -> Decimal:
        """No patient weighs more: a dose in grams is at least this much per kg for anyone (when no weight can be used)."""
        return max(self.plausible_weight_kg_adult[1], self.plausible_weight_kg_child[1])

    def weight_limit(self, age_years: int | None) -> tuple[int, str]:
        """The oldest weight, in days, that may set a dose for a patient of this age, and whom that limit is for."""
        if age_years is not None and age_years >= ADULT_FROM_YEARS:
            return self.weight_max_age_days_adult, "adults"
        return self.weight_max_age_days_child, "children" if age_years is not None else "patients of unknown age"

    def implausible(self, weight: DosingWeight, age_years: int | None) -> str | None:
        """Why this recorded weight cannot be the patient's body weight (a unit or typing error), or None.

        A dose per kg on a wrong weight is a wrong dose: 0.004 kg or 5000 kg gives no dose at all, only a card asking
        to check the weight."""
        adult = age_years is not None and age_years >= ADULT_FROM_YEARS
        low, high = self.plausible_weight_kg_adult if adult else self.plausible_weight_kg_child
        if low <= weight.kg <= high:
            return None
        source = ("for adults (the cut-offs Chan & Raffa 2017 used to clean health-record weights; not the guideline's)"
                  if adult else "for children and patients of unknown age (the service's policy; not the guideline's)")
        when = str(weight.measured)[:10] if weight.measured else "undated"
        return (f"The latest body weight ({weight.stated}, {when}) is outside {fmt(low)}–{fmt(high)} kg, the plausible range "
                f"{source}: check the weight and record it again. No dose is computed from it.")


ADULT_FROM_YEARS = 18


@dataclass(frozen=True)
class WeightStanding:
    """Whether a recorded weight may set an absolute dose today, and the words that say why."""

    current: bool
    said: str  # e.g. "measured 3 days ago (2026-11-28)"


def weight_standing(weight: DosingWeight, age_years: int | None, today: date, policy: DosePolicy) -> WeightStanding:
    """A weight measured too long ago (or on a date we cannot read) still shows the per-kg arithmetic, but sets no dose."""
    days = weight.days_old(today)
    limit, who = policy.weight_limit(age_years)
    if days is None:
        return WeightStanding(False, "date of measurement not recorded: record a current weight; no dose is offered in grams")
    on = str(weight.measured)[:10]
    if days < 0:
        return WeightStanding(False, f"dated in the future ({on}): check the record; no dose is offered in grams")
    ago = "today" if days == 0 else ("yesterday" if days == 1 else f"{days} days ago")
    if days > limit:
        return WeightStanding(False, f"measured {ago} ({on}), older than the {limit}-day limit for {who}: "
                                     "record a current weight; no dose is offered in grams")
    return WeightStanding(True, f"measured {ago} ({on})")


@dataclass(frozen=True)
class Regimen:
    """A course as the guideline states it: a daily dose per kg for a number of days."""

    definition_url: str
    dose_per_kg_per_day: Decimal
    days: int
    route: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)  # the CodeableConcept a suggestion carries

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
    route = dosage.get("route")
    if not isinstance(route, dict) or not route.get("coding"):
        raise RegimenError("dosage.route must name the route (a coded CodeableConcept) that a suggested order carries")
    return Regimen(activity["url"], Decimal(str(dose["value"])), int(bounds["value"]), route)


@dataclass(frozen=True)
class Course:
    """The IVIG drafts of one hook call, taken together: two drafts signed at once are one patient's dose."""

    drafts: tuple[DraftDosage, ...]
    #: the heaviest plausible body weight (DosePolicy): without a usable weight, grams still give a least dose per kg
    heaviest_kg: Decimal | None = None
    #: how many orders the drafts come from: an order whose dose changes over the course is one draft per instruction
    orders: int = 1

    @property
    def single(self) -> DraftDosage | None:
        return self.drafts[0] if len(self.drafts) == 1 else None

    @property
    def stated(self) -> bool:
        """Does any draft say anything about its dose or length?"""
        return any(d != DraftDosage() for d in self.drafts)

    @property
    def readable(self) -> bool:
        """Does every draft state a daily dose (in g or g/kg) and a number of days that can be read?"""
        return all(d.dosed and d.days is not None for d in self.drafts)

    @property
    def unreadable(self) -> tuple[str, ...]:
        """What the drafts that cannot be checked write in a form that cannot be read unambiguously, in words."""
        return tuple(dict.fromkeys(r for d in self.drafts if not (d.dosed and d.days is not None) for r in d.unreadable))

    def daily_doses_per_kg(self, weight: DosingWeight | None) -> list[Decimal]:
        """The daily dose per kg of each draft that states one, whether or not it states its days."""
        return [dose for d in self.drafts if (dose := d.per_kg_per_day(weight)) is not None]

    def least_per_kg(self, weight: DosingWeight | None) -> Decimal | None:
        """Without a usable weight, what the drafts' grams certainly give per kg for any plausible patient: their total
        in grams (or one day of each daily dose in grams, when days are missing) over the heaviest plausible weight.
        None with a weight (the true values hold) or when no draft states grams."""
        if weight is not None or not self.heaviest_kg:
            return None
        grams = self.total_grams(None)
        if grams is None:
            daily = [g for d in self.drafts if (g := d.grams_per_day(None)) is not None]
            grams = sum(daily, Decimal(0)) if daily else None
        return grams / self.heaviest_kg if grams is not None else None

    def total_per_kg(self, weight: DosingWeight | None) -> Decimal | None:
        return self._total(lambda d: d.per_kg_per_day(weight))

    def total_grams(self, weight: DosingWeight | None) -> Decimal | None:
        return self._total(lambda d: d.grams_per_day(weight))

    def _total(self, daily: Callable[[DraftDosage], Decimal | None]) -> Decimal | None:
        """The sum of daily dose x days over the drafts; None unless every draft states both."""
        total = Decimal(0)
        for draft in self.drafts:
            dose = daily(draft)
            if dose is None or draft.days is None:
                return None
            total += dose * draft.days
        return total if self.drafts else None

    def describe(self, weight: DosingWeight | None) -> str | None:
        """The course as drafted, in one clause ("The draft order gives 0.4 g/kg/day (28 g/day) for 5 days, 2 g/kg (140 g)
        in total"); for a course that cannot be totalled, what it certainly gives and what cannot be read; None when
        the drafts state nothing of their dose or length."""
        total_grams, total_per_kg = self.total_grams(weight), self.total_per_kg(weight)
        if total_grams is None and total_per_kg is None:
            return self._partly(weight)
        totals = _either_or_both(total_per_kg, "g/kg", total_grams, "g")
        draft = self.single
        if draft is None:
            return f"The {self._parts()} together give {totals} in total"
        if draft.every_days is not None:
            return f"The draft order gives {totals} {_repeats(draft)}: a maintenance schedule, whose course is one treatment"
        daily = _either_or_both(draft.per_kg_per_day(weight), "g/kg/day", draft.grams_per_day(weight), "g/day")
        return f"The draft order gives {daily} for {days_text(draft.days or 0)}, {totals} in total"

    def _parts(self) -> str:
        """What the drafts are: "2 IVIG draft orders", "draft order's 2 dosage instructions"."""
        if self.orders == len(self.drafts):
            return f"{self.orders} IVIG draft orders"
        if self.orders == 1:
            return f"draft order's {len(self.drafts)} dosage instructions"
        return f"{self.orders} IVIG draft orders ({len(self.drafts)} dosage instructions)"

    def _partly(self, weight: DosingWeight | None) -> str | None:
        """A course that cannot be totalled: the daily dose of a draft that gives no days it can be read for (one day
        of it is certain), and what cannot be read."""
        draft, said = self.single, []
        if draft is not None and draft.dosed and draft.days is None:
            per_kg, grams = draft.per_kg_per_day(weight), draft.grams_per_day(weight)
            said.append(f"The draft order gives {_either_or_both(per_kg, 'g/kg/day', grams, 'g/day')} and no number of days "
                        f"that can be read: one day alone is {_either_or_both(per_kg, 'g/kg', grams, 'g')}")
        if self.unreadable:
            whose = "the draft order" if draft is not None else "the IVIG draft orders"
            said.append(f"{'What' if said else whose.capitalize()} cannot be read: {'; '.join(self.unreadable)}")
        return ". ".join(said) or None


def _repeats(draft: DraftDosage) -> str:
    """How a maintenance schedule repeats: "every 3 weeks, 6 times", "every 21 days for 26 weeks"."""
    every = draft.every_days or 0
    whole = every == int(every)
    interval = f"every {weeks_or_days(int(every))}" if whole else f"every {fmt(Decimal(every.numerator) / every.denominator)} days"
    if draft.treatments is not None:
        return f"{interval}, {draft.treatments} {'time' if draft.treatments == 1 else 'times'}"
    return f"{interval} for {weeks_or_days(draft.span_days)}" if draft.span_days else interval


def weeks_or_days(days: int) -> str:
    """'3 weeks' for 21 days, '10 days' for 10."""
    return ("1 week" if days == 7 else f"{days // 7} weeks") if days % 7 == 0 else days_text(days)


def _either_or_both(first: Decimal | None, first_unit: str, second: Decimal | None, second_unit: str) -> str:
    """"0.4 g/kg (28 g)", or whichever of the two is known."""
    shown = [f"{fmt(v)} {unit}" for v, unit in ((first, first_unit), (second, second_unit)) if v is not None]
    return shown[0] + (f" ({shown[1]})" if len(shown) > 1 else "")


@dataclass(frozen=True)
class Comparison:
    """How a draft course stands against a recommendation's regimens."""

    conforms: bool | None  # None: the draft does not say enough to tell
    statement: str  # one sentence for the card
    departure: str | None = None  # which way and how far, for the summary ("about 2.5 times the guideline's course total")


def compare(course: Course, regimens: Sequence[Regimen], weight: DosingWeight | None, tolerance: Decimal) -> Comparison:
    """Does the draft course match one of the regimens (or lie within the range they span)?

    Alternatives such as "2 g/kg in 2-5 days" are shipped as their end points (1 g/kg/day x 2,
    0.4 g/kg/day x 5). A draft that gives the same total over a number of days between them
    (0.5 g/kg/day x 4) follows the guideline too, so it conforms. Several drafts in one call are
    one course: their total is what is checked, since their schedules may overlap.
    """
    total = course.total_per_kg(weight)
    draft = course.single
    per_kg = draft.per_kg_per_day(weight) if draft is not None else None
    if total is None and per_kg is not None:  # a daily dose without days: it departs if no regimen gives it each day
        daily = [r.dose_per_kg_per_day for r in regimens]
        nearest = max(daily) if per_kg > max(daily) else min(daily)
        if abs(per_kg - nearest) > tolerance * nearest and not min(daily) <= per_kg <= max(daily):
            return Comparison(False, f"{course.describe(weight)}; the guideline's regimen is {describe_all(regimens)}.",
                              f"{magnitude(per_kg / nearest)} the guideline's daily dose")
    if total is None:
        missing = []
        if not all(d.dosed for d in course.drafts):
            missing.append("a daily dose")
        elif weight is None:
            missing.append("a daily dose per kg (no body weight)")
        if not all(d.days is not None for d in course.drafts):
            missing.append("a number of days")
        who = "The draft order does not state" if draft is not None else "Not every IVIG draft order states"
        readable = " that can be read" if course.unreadable else ""
        partly = course.describe(weight)
        return Comparison(None, f"{who} {' or '.join(missing)}{readable}, so the course cannot be checked against the regimen."
                          + (f" {partly}." if partly else ""))

    def close(a: Decimal, b: Decimal) -> bool:
        return abs(a - b) <= tolerance * b

    totals = {r.total_per_kg for r in regimens}
    days = draft.days if draft is not None else None
    spans_range = len(totals) == 1 and days is not None and min(r.days for r in regimens) <= days <= max(r.days for r in regimens)
    if draft is None:
        matches = any(close(total, t) for t in totals)
    else:
        matches = any(per_kg is not None and close(per_kg, r.dose_per_kg_per_day) and days == r.days for r in regimens) or (
            spans_range and close(total, next(iter(totals))))
    drafted = course.describe(weight)
    if matches:
        return Comparison(True, f"{drafted}: this follows the guideline's regimen.")
    return Comparison(False, f"{drafted}; the guideline's regimen is {describe_all(regimens)}.",
                      _departure(total, per_kg, days, regimens, close))


def _departure(total: Decimal, per_kg: Decimal | None, days: int | None, regimens: Sequence[Regimen],
               close: Callable[[Decimal, Decimal], bool]) -> str:
    """Which way and how far a course departs from the nearest regimen, the larger difference first."""
    nearest = min(regimens, key=lambda r: (abs(total - r.total_per_kg), abs((days or r.days) - r.days)))
    same_total = [r for r in regimens if r.total_per_kg == nearest.total_per_kg]
    shortest, longest = min(r.days for r in same_total), max(r.days for r in same_total)
    parts = []
    if not close(total, nearest.total_per_kg):
        parts.append(f"{magnitude(total / nearest.total_per_kg)} the guideline's course total")
    elif per_kg is not None and not any(close(per_kg, r.dose_per_kg_per_day) for r in same_total):
        daily = min((r.dose_per_kg_per_day for r in same_total), key=lambda d: abs(per_kg - d))
        parts.append(f"{magnitude(per_kg / daily)} the guideline's daily dose")
    if days is not None and days < shortest:
        parts.append(f"{days_text(shortest - days)} shorter")
    elif days is not None and days > longest:
        parts.append(f"{days_text(days - longest)} longer")
    return ", ".join(parts) or "a different schedule"


def magnitude(ratio: Decimal) -> str:
    """A ratio as a clinician says it: "about 10 times", "about 2.5 times", "20 % above", "40 % below", and a 10-fold
    error the other way "about 1/10 of" (not "90 % below", nor "100 % below" for a 1000-fold one)."""
    if ratio >= Decimal("1.5"):
        shown = f"{ratio:.0f}" if ratio >= 10 else f"{ratio:.1f}".removesuffix(".0")
        return f"about {shown} times"
    if 0 < ratio < Decimal("0.2"):
        return f"about 1/{1 / ratio:.0f} of"
    percent = abs(ratio - 1) * 100
    return f"{percent:.0f} % {'above' if ratio > 1 else 'below'}"


def days_text(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def fmt(value: Decimal) -> str:
    """A dose as a clinician writes it: 28, 0.4, 27.9 — no trailing zeros, at most 2 decimals."""
    text = f"{value.quantize(Decimal('0.01')):f}".rstrip("0").rstrip(".")
    return text or "0"


def _round(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.1"))
