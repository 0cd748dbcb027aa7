"""Reading FHIR JSON from EHRs without trusting its shape.

Draft orders and prefetched records come from outside and are often not valid FHIR (the CDS
Hooks Sandbox sends `category` as an object and orders without a medication). Every place that
reads such data goes through these accessors, which answer "absent" for a value of the wrong JSON
type instead of raising: a malformed element is unknown, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

#: larger numbers are not a dose, a weight or a count; reading them as unknown keeps Decimal arithmetic finite
_LARGEST = Decimal("1e9")


def obj(value: Any) -> dict:
    """The value if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def objects(value: Any) -> list[dict]:
    """The JSON objects in a JSON array (anything else is skipped)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def number(value: Any) -> Decimal | None:
    """A finite JSON number of sane size (or a numeric string), else None. Booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
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


def element(resource: Mapping[str, Any], name: str) -> Any:
    """An element by its FHIRPath name: a choice element (medication[x]) by any of its typed names."""
    if name in resource:
        return resource[name]
    return next((v for k, v in resource.items() if k.startswith(name) and k[len(name):][:1].isupper()), None)
