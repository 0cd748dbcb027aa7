"""The dosing weight: the latest body weight on record, in kg, read in the units EHRs write it in.

Which Observations are body weights is the knowledge's to say (the ValueSet of the Library's `weight` data
requirement): a height or a BMI that came in the same Bundle is not a weight. The latest is the latest in time, not
in text ("2026-12-01T23:30-08:00" is after "2026-12-02T05:00Z"), and an older weight never stands in for a latest
one we cannot use: the reason is shown instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from .fhirjson import number, obj, quantity_written, recorded_at, text
from .inputs import RESULT_STATUSES
from .readable import unreadable
from .regimen import POUND_IN_KG, UCUM, DosingWeight, fmt

#: UCUM codes of mass (case-sensitive, as UCUM defines them): kg per unit. An avoirdupois ounce is 1/16 pound.
_UCUM_KG = {"kg": Decimal(1), "g": Decimal("0.001"), "[lb_av]": POUND_IN_KG, "[oz_av]": POUND_IN_KG / 16}
#: unit words EHRs send without a UCUM code (compared in lower case): each names one unit of mass
_WORDS = {
    "kg": "kg", "kgs": "kg", "kilogram": "kg", "kilograms": "kg",
    "g": "g", "gm": "g", "gram": "g", "grams": "g",
    "lb": "[lb_av]", "lbs": "[lb_av]", "pound": "[lb_av]", "pounds": "[lb_av]", "[lb_av]": "[lb_av]",
    "oz": "[oz_av]", "ounce": "[oz_av]", "ounces": "[oz_av]", "[oz_av]": "[oz_av]",
}


def latest_dosing_weight(observations: Iterable[dict], is_body_weight: Callable[[dict], bool]) -> tuple[DosingWeight | None, str | None]:
    """The latest body weight that is a result (final, amended, corrected; observations newest first), or why there
    is none we can dose by: a weight on record that is only preliminary is named, not called missing."""
    recorded = [o for o in observations if is_body_weight(o)]
    weights = [o for o in recorded if text(o.get("status")) in RESULT_STATUSES]
    if not weights:
        if recorded:
            newest = recorded[0]
            shown = quantity_written(obj(newest.get("valueQuantity")))
            return None, (f"The latest body weight on record ({recorded_at(newest) or 'undated'}, {shown}) is "
                          f"{text(newest.get('status')) or 'of no status'}, not a final result: confirm it in the chart.")
        return None, "No body weight is on record."
    latest = weights[0]
    when = recorded_at(latest) or "undated"
    fault = unreadable(latest)
    if fault is not None:
        return None, f"The latest body weight ({when}) cannot be read: {fault}."
    weight = dosing_weight(latest)
    if weight is None:
        quantity = obj(latest.get("valueQuantity"))
        unit = text(quantity.get("code")) or text(quantity.get("unit")) or "no unit"
        if text(quantity.get("comparator")):
            return None, (f"The latest body weight ({when}) is a bound ({quantity['comparator']} {quantity.get('value')!s} {unit}), "
                          "not a measured value.")
        written = text(quantity.get("unit"))
        if written and written != unit:
            unit = f"{unit}, written as {written}"
        return None, f"The latest body weight ({when}) is not a usable value in a unit of mass ({unit})."
    return weight, None


def dosing_weight(observation: dict) -> DosingWeight | None:
    """Body weight in kg from an Observation in a unit of mass: its UCUM code (kg, g, [lb_av], [oz_av]) when it has one,
    else the unit as written (kg, g, lb, lbs, oz, in any case); None for anything else, a code that contradicts the
    words (code kg, unit "lb": 154 of which is 70 kg or 154 kg, a 2.2-fold dose either way), a bound (comparator
    "> 150 kg", a scale's limit) or a value that is not a number above 0."""
    quantity = obj(observation.get("valueQuantity"))
    value = number(quantity.get("value"))
    if value is None or value <= 0 or text(quantity.get("comparator")):
        return None
    code, written = text(quantity.get("code")), text(quantity.get("unit"))
    said = _WORDS.get(_word(written or ""))
    if code is not None and quantity.get("system") in (UCUM, None):
        unit = code if code in _UCUM_KG else _WORDS.get(_word(code))  # "KG", "[LB_AV]": UCUM's case-insensitive forms
        if said is not None and said != unit:
            return None
    else:
        unit = said
    if unit is None:
        return None
    return DosingWeight(value * _UCUM_KG[unit], recorded_at(observation), f"{fmt(value)} {code or written}")


def _word(unit: str) -> str:
    return " ".join(unit.lower().rstrip(".").split())
