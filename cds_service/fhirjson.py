"""Reading FHIR JSON from EHRs without trusting its shape.

Draft orders and prefetched records come from outside and are often not valid FHIR (the CDS
Hooks Sandbox sends `category` as an object and orders without a medication). Every place that
reads such data goes through these accessors, which answer "absent" for a value of the wrong JSON
type instead of raising: a malformed element is unknown, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

#: the system of UCUM units: a Quantity's code means its UCUM unit only in this system (or with no system given)
UCUM = "http://unitsofmeasure.org"
#: larger numbers are not a dose, a weight or a count; reading them as unknown keeps Decimal arithmetic finite
_LARGEST = Decimal("1e9")


def obj(value: Any) -> dict:
    """The value if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def objects(value: Any) -> list[dict]:
    """The JSON objects in a JSON array (anything else is skipped)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def copied(value: Any) -> Any:
    """A JSON value with its objects and arrays made anew (strings and numbers are immutable and shared): what an
    answer takes from a request or from the knowledge can then be changed without changing either. copy.deepcopy
    gives the same for JSON, at several times the cost (it keeps a memo for shared and cyclic objects JSON has not)."""
    if isinstance(value, dict):
        return {key: copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copied(item) for item in value]
    return value


def quantity_written(quantity: Mapping[str, Any]) -> str:
    """A Quantity as the record writes it ("100 mL/h", "154 kg"): its value as sent and its code, else its unit. For a
    card that names what it could not use, so the clinician finds it in the chart."""
    unit = text(quantity.get("code")) or text(quantity.get("unit")) or ""
    return f"{quantity.get('value')!s} {unit}".strip()


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def number(value: Any) -> Decimal | None:
    """A finite JSON number of sane size, else None. Booleans are not numbers, and neither is a numeric string: FHIR
    JSON writes numbers as numbers, and one rule holds for the whole request (readable.py for the record)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() and abs(result) <= _LARGEST else None


def reference_of(resource: dict) -> str | None:
    """The "Type/id" by which a resource is referred to (in order-select selections, in a delete action), if it has an id."""
    kind, resource_id = text(resource.get("resourceType")), text(resource.get("id"))
    return f"{kind}/{resource_id}" if kind and resource_id else None


def code_of(resource: dict, element: str) -> str | None:
    """The first coding's code of a CodeableConcept element (e.g. a Condition's clinicalStatus)."""
    codings = objects(obj(resource.get(element)).get("coding"))
    return text(codings[0].get("code")) if codings else None


#: where a record says when it happened; each resource type has its own few of these, clinical time before filing time
_WHEN = ("effectiveDateTime", "effectivePeriod", "performedDateTime", "performedPeriod", "authoredOn", "issued")


def recorded_at(resource: Mapping[str, Any]) -> str | None:
    """When a record is about (an Observation's effective time, a Procedure's performed time, an order's authoredOn):
    the dateTime as given, or a Period's start."""
    for element in _WHEN:
        value = resource.get(element)
        found = text(obj(value).get("start")) if element.endswith("Period") else text(value)
        if found:
            return found
    return None


#: FHIR date, dateTime and instant (seconds optional, as EHRs send them): year, month, day, hour, minute, second, zone
_DATE_TIME = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?")


#: the moments of the dates and times read so far (None for text that is none): the same few strings come again and again,
#: the results of a panel share one time, and every call for a patient brings their record again
_INSTANTS: dict[str, datetime | None] = {}


def instant(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as a timezone-aware moment, so that records from different time zones sort by
    when they happened, not by their text: a date (or a year, a month) as its first moment in UTC, a time without a zone
    as UTC. None when it is no such value: text, a number, 2026-02-30, month 13. Remembered: a long record is read more
    than once per call (whether it can be read, its order in time), and reading one costs more than all else about it."""
    if not isinstance(value, str):
        return None
    try:
        return _INSTANTS[value]
    except KeyError:
        pass
    found = _read_instant(value)
    if len(_INSTANTS) >= 20_000:  # bounded (a few MB): EHR data can carry any number of distinct times
        _INSTANTS.clear()
    _INSTANTS[value] = found
    return found


def _read_instant(value: str) -> datetime | None:
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    offset = UTC
    if zone and zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 14 or minutes > 59:
            return None
        sign = -1 if zone[0] == "-" else 1
        offset = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0),
                        tzinfo=offset)
    except ValueError:
        return None


def element(resource: Mapping[str, Any], name: str) -> Any:
    """An element by its FHIRPath name: a choice element (medication[x]) by any of its typed names."""
    if name in resource:
        return resource[name]
    for key in resource:  # a plain loop: asked of every medication on a long record
        if key.startswith(name) and key[len(name):][:1].isupper():
            return resource[key]
    return None
