"""Whether a record from the EHR can be read at all: the one rule for a value of the wrong type in the record.

The knowledge's FHIRPath reads a record's time (to find the newest result, to tell this episode from an earlier one)
and its measured values and reference limits (to compare them). A record whose date does not exist (2026-02-30, month
13, text) or whose number is text or true cannot be placed in time or compared: evaluated as it is, it fails the whole
call, and read by guesswork it could say anything. Such a record is left out of what the conditions see, and the answer
names it (the base input `unreadableRecords`), so one bad record elsewhere in the chart never hides a critical card.
A diagnosis is the exception: that the patient has it does not depend on its dates, so a Condition whose date cannot be
read counts without that date (and is named all the same).

Only the elements the service reads are checked; anything else in a record may be as odd as it likes. A numeric
string ("45") is not read as a number anywhere in the record (FHIR JSON writes numbers as numbers): one rule, whatever
the value.
"""

from __future__ import annotations

from typing import Any

from .fhirjson import instant

#: where a record says when it happened (a dateTime, an instant or a Period), in every resource type the service reads
_TIMES = ("effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued", "performedDateTime", "performedPeriod",
          "authoredOn", "onsetDateTime", "onsetPeriod", "abatementDateTime", "abatementPeriod", "recordedDate",
          "occurrenceDateTime", "occurrencePeriod")
_TIME_SET = frozenset(_TIMES)


def without_times(resource: dict) -> dict:
    """A copy without the dates: what a diagnosis with an unreadable date still says (that the patient has it)."""
    return {k: v for k, v in resource.items() if k not in _TIMES}


def is_json_number(value: Any) -> bool:
    """A JSON number (not a boolean, not a numeric string): what FHIR JSON sends a decimal or an integer as."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def unreadable(resource: dict) -> str | None:
    """Why the service cannot read this record (the first fault found, in words a clinician can check), or None."""
    times = _TIME_SET.intersection(resource)  # a record has one or two of them: looked up in one step, not each
    for element in times if len(times) < 2 else sorted(times, key=_TIMES.index):
        value = resource[element]
        if value is None:
            continue
        if element.endswith("Period"):
            if not isinstance(value, dict):
                return f"{element} is not a period"
            for end in ("start", "end"):
                if value.get(end) is not None and instant(value[end]) is None:
                    return f"{element}.{end} {_shown(value[end])} is not a date"
        elif instant(value) is None:
            return f"{element} {_shown(value)} is not a date"
    return _unreadable_quantities(resource)


def _unreadable_quantities(resource: dict) -> str | None:
    quantity = resource.get("valueQuantity")
    if quantity is not None:
        if not isinstance(quantity, dict):
            return "valueQuantity is not a quantity"
        if quantity.get("value") is not None and not is_json_number(quantity["value"]):
            return f"the value {_shown(quantity['value'])} is not a number"
    ranges = resource.get("referenceRange")
    if ranges is None:
        return None
    if not isinstance(ranges, list) or not all(isinstance(r, dict) for r in ranges):
        return "referenceRange is not a list of ranges"
    for limits in ranges:
        for end in ("low", "high"):
            limit = limits.get(end)
            if limit is None:
                continue
            value = limit.get("value") if isinstance(limit, dict) else limit
            if not isinstance(limit, dict) or (value is not None and not is_json_number(value)):
                return f"the reference range's {end} limit {_shown(value)} is not a number"
    return None


def _shown(value: Any) -> str:
    """A value as the record holds it, briefly (it goes into a card)."""
    if isinstance(value, str):
        shown = repr(value)
    elif isinstance(value, bool) or value is None:
        shown = {True: "true", False: "false", None: "null"}[value]
    else:
        shown = str(value) if isinstance(value, (int, float)) else "an object" if isinstance(value, dict) else "a list"
    return shown if len(shown) <= 40 else shown[:39] + "…"
