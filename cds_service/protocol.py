"""Parse and validate CDS Hooks 2.0 service requests for ``order-select`` and ``order-sign``.

This module is deliberately free of Flask: it turns a raw request body into a typed, immutable
:class:`HookRequest` or raises :class:`RequestError`, so the HTTP layer only has to map that error
onto a status code and an OperationOutcome, and the guideline logic never sees malformed input.

The rules follow CDS Hooks 2.0 (request body) and the CDS Hooks Library hook definitions
(``order-select`` and ``order-sign`` contexts), with two deliberate kinds of leniency:

* The draft orders are not validated as FHIR. Real clients (the CDS Hooks Sandbox among them) send
  drafts that are not valid FHIR, and refusing them would mean giving no advice at all.
* An optional member sent as JSON ``null`` is treated as absent. Many clients serialize unset
  fields as ``null``, and the difference carries no meaning anywhere except inside ``prefetch``,
  where ``null`` means "no data" and is therefore kept as sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .config import RequestLimits
from .errors import RequestError
from .fhirjson import reference_of

SUPPORTED_HOOKS = ("order-select", "order-sign")

# The hook definition says selections are relative references "Type/id" into draftOrders, e.g.
# "MedicationRequest/103". The id part is not held to FHIR's id syntax: some EHRs use longer ids, and
# every selection must match a draft order anyway, which is the check that matters.
_SELECTION = re.compile(r"[A-Z][A-Za-z]*/[^/\s]+")
#: RFC 6750 b64token: what may follow "Bearer " in an Authorization header (a JWT fits; anything else cannot be sent)
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: everything but quotes and brackets, deleted by bytes.translate: what is left says where strings and nesting are
_NOT_QUOTE_OR_BRACKET = bytes(sorted(set(range(256)) - set(b'"[]{}')))
#: objects and arrays nest alike: one kind of opening and one kind of closing bracket
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


@dataclass(frozen=True)
class FhirAuthorization:
    """The bearer token a client lends us for calling its FHIR server; transient, never to be logged."""

    access_token: str
    token_type: str
    scope: str | None
    subject: str | None
    expires_in: int | None

    def __repr__(self) -> str:
        # The spec says the token must be treated as transient; keep it out of logs and tracebacks.
        return (f"FhirAuthorization(access_token='***', token_type={self.token_type!r}, "
                f"scope={self.scope!r}, subject={self.subject!r}, expires_in={self.expires_in!r})")


@dataclass(frozen=True)
class HookRequest:
    """A validated hook call: everything the guideline logic may rely on without re-checking."""

    hook: str
    hook_instance: str
    fhir_server: str | None
    fhir_authorization: FhirAuthorization | None
    patient_id: str
    user_id: str | None
    encounter_id: str | None
    selections: tuple[str, ...]
    draft_orders: tuple[dict[str, Any], ...]
    prefetch: Mapping[str, Any]

    def context_value(self, name: str) -> str | None:
        """Value of a root-level primitive context field, by its CDS Hooks name.

        Prefetch templates may only use such fields as tokens (``{{context.patientId}}``), so this is
        what a template renderer needs; ``None`` means the token cannot be rendered.
        """
        return {
            "patientId": self.patient_id,
            "userId": self.user_id,
            "encounterId": self.encounter_id,
        }.get(name)

    def selected_orders(self) -> tuple[dict[str, Any], ...]:
        """order-select: the draft orders named in selections; order-sign: all draft orders.

        The hook definitions say advice on order-select should focus on the newly selected orders
        (the other drafts are context only), while order-sign is about signing every draft.
        """
        if self.hook != "order-select":
            return self.draft_orders
        wanted = set(self.selections)
        return tuple(order for order in self.draft_orders if reference_of(order) in wanted)


def parse_hook_request(body: bytes | str, served_hook: str, limits: RequestLimits | None = None) -> HookRequest:
    """Parse and validate; raise RequestError on anything we cannot safely act on.

    ``served_hook`` is the hook of the service that was called; a request for another hook is
    refused rather than answered with advice computed for the wrong workflow moment. ``limits`` bound the
    JSON depth (400), the draft orders and the entries of the prefetch Bundles (413).
    """
    if served_hook not in SUPPORTED_HOOKS:
        raise ValueError(f"unsupported hook {served_hook!r}; expected one of {SUPPORTED_HOOKS}")
    limits = limits or RequestLimits()
    request = load_json(body, limits.max_json_depth)
    if not isinstance(request, dict):
        raise RequestError("the request body must be a JSON object")

    hook = _required_string(request, "hook", "hook")
    if hook != served_hook:
        raise RequestError(f"hook: this service answers {served_hook}, not {_show(hook)}")
    hook_instance = _required_string(request, "hookInstance", "hookInstance")
    fhir_server = _fhir_server(request)
    fhir_authorization = _fhir_authorization(request)
    if fhir_authorization is not None and fhir_server is None:
        raise RequestError("fhirServer is required when fhirAuthorization is present")

    context = _required_object(request, "context", "context")
    draft_orders = _draft_orders(context, limits.max_draft_orders)
    selections = _selections(context, draft_orders) if hook == "order-select" else ()
    prefetch = _optional_object(request, "prefetch", "prefetch") or {}
    check_entry_count((v for v in prefetch.values() if isinstance(v, dict)), limits.max_bundle_entries, "the prefetch Bundles")

    return HookRequest(
        hook=hook,
        hook_instance=hook_instance,
        fhir_server=fhir_server,
        fhir_authorization=fhir_authorization,
        patient_id=_required_string(context, "patientId", "context.patientId"),
        user_id=_optional_string(context, "userId", "context.userId"),
        encounter_id=_optional_string(context, "encounterId", "context.encounterId"),
        selections=selections,
        draft_orders=draft_orders,
        # Read-only view: the request is frozen, and prefetch must stay exactly as the client sent it.
        prefetch=MappingProxyType(prefetch),
    )


def load_json(body: bytes | str, max_depth: int) -> Any:
    """Decode a request body as strict JSON (UTF-8, no NaN/Infinity), at most ``max_depth`` arrays and objects
    deep; RequestError (400) with the reason otherwise. Every endpoint that takes JSON reads it through this.

    The depth is checked before parsing: a body that parses can still be too deep for what reads it next
    (copying, FHIRPath, rendering the answer), which would fail with a RecursionError - a 500.
    """
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    except UnicodeDecodeError as error:
        reason = f"the request body is not valid UTF-8: {error.reason} at byte {error.start}"
        raise RequestError(reason) from None
    raw = bytes(body) if isinstance(body, (bytes, bytearray)) else body.encode("utf-8", "surrogatepass")
    if _deeper_than(raw, max_depth):
        raise RequestError(f"the request body nests arrays and objects more than {max_depth} deep; this service reads at most {max_depth}")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        raise RequestError(f"the request body is not valid JSON: {error}") from None
    except RecursionError:
        raise RequestError(f"the request body nests arrays and objects more than {max_depth} deep") from None


def _deeper_than(body: bytes, limit: int) -> bool:
    """Does this JSON text nest arrays and objects more than ``limit`` deep? Only bytes operations, each in C and linear
    in the body (a 5 MB body takes milliseconds, where a pass in Python would take a large part of the call).

    In JSON a backslash occurs only inside strings, where escapes pair left to right: removing every escaped backslash,
    then every escaped quote, leaves each string as two quotes with no quote between. Of the quotes and brackets, two
    adjacent quotes are dropped (what lies on either side is alike in or out of a string); any quote left encloses
    brackets inside a string, which do not count. Each pass then removes the innermost pairs (``[]``): the brackets
    are gone after as many passes as the body is deep. A body whose brackets do not pair is not JSON: whatever this
    answers, json.loads refuses it (a 400 all the same)."""
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = body.translate(None, _NOT_QUOTE_OR_BRACKET).replace(b'""', b"")
    if b'"' in marks:
        marks = b"".join(marks.split(b'"')[::2])
    brackets = marks.translate(_ONE_KIND)
    for _ in range(limit):
        inner_removed = brackets.replace(b"[]", b"")
        if len(inner_removed) == len(brackets):
            return False
        brackets = inner_removed
    return b"[]" in brackets


def check_entry_count(bundles: Any, limit: int, what: str) -> None:
    """RequestError (413) when the Bundles hold more than ``limit`` entries together."""
    total = sum(len(b["entry"]) for b in bundles if isinstance(b.get("entry"), list))
    if total > limit:
        raise RequestError(f"{what} hold {total} entries; this service reads at most {limit}", status=413)


def _reject_constant(name: str) -> Any:
    """Python's json accepts NaN and Infinity; JSON (RFC 8259) does not, and neither do we."""
    raise ValueError(f"{name} is not a JSON value")


def _fhir_server(request: dict[str, Any]) -> str | None:
    """The FHIR base URL, without trailing slash, so callers can append "/Type/id" directly."""
    value = request.get("fhirServer")
    if value is None:
        return None
    reason = "fhirServer, when present, must be an absolute http(s) URL"
    if not isinstance(value, str):
        raise RequestError(reason)
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise RequestError(reason) from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise RequestError(reason)
    return value.rstrip("/")


def _fhir_authorization(request: dict[str, Any]) -> FhirAuthorization | None:
    """The OAuth bearer token object; only what we need to call the FHIR server is required."""
    auth = _optional_object(request, "fhirAuthorization", "fhirAuthorization")
    if auth is None:
        return None
    access_token = _required_string(auth, "access_token", "fhirAuthorization.access_token")
    if not _BEARER_TOKEN.fullmatch(access_token):
        raise RequestError("fhirAuthorization.access_token must be an RFC 6750 bearer token (letters, digits and -._~+/, then '=' padding)")
    token_type = _required_string(auth, "token_type", "fhirAuthorization.token_type")
    if token_type.lower() != "bearer":
        raise RequestError(f"fhirAuthorization.token_type must be 'Bearer', not '{_show(token_type)}'")
    expires_in = auth.get("expires_in")
    if expires_in is not None and (not isinstance(expires_in, int) or isinstance(expires_in, bool)):
        raise RequestError("fhirAuthorization.expires_in, when present, must be an integer")
    return FhirAuthorization(
        access_token=access_token,
        token_type="Bearer",
        scope=_optional_string(auth, "scope", "fhirAuthorization.scope"),
        subject=_optional_string(auth, "subject", "fhirAuthorization.subject"),
        expires_in=expires_in,
    )


def _draft_orders(context: dict[str, Any], limit: int) -> tuple[dict[str, Any], ...]:
    """The resources of context.draftOrders, checked only as far as we need to address them, at most ``limit``."""
    bundle = _required_object(context, "draftOrders", "context.draftOrders")
    if bundle.get("resourceType") != "Bundle":
        raise RequestError("context.draftOrders.resourceType must be 'Bundle'")
    # Bundle.type is not required: the 2.0 examples and the CDS Hooks Sandbox omit it.
    entries = bundle.get("entry")
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise RequestError("context.draftOrders.entry, when present, must be an array")
    if len(entries) > limit:
        raise RequestError(f"context.draftOrders has {len(entries)} entries; this service reads at most {limit}", status=413)
    resources = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue  # Nothing to advise on; skipping is kinder than refusing the whole call.
        path = f"context.draftOrders.entry[{index}].resource.resourceType"
        _required_string(resource, "resourceType", path)
        resources.append(resource)
    return tuple(resources)


def _selections(context: dict[str, Any], draft_orders: tuple[dict[str, Any], ...]) -> tuple[str, ...]:
    """order-select's selections, each of which must name a draft order we were given."""
    value = context.get("selections")
    if not isinstance(value, list):
        raise RequestError(
            "context.selections is required for order-select and must be an array of 'Type/id' strings")
    known = {reference_of(order) for order in draft_orders}
    for index, selection in enumerate(value):
        path = f"context.selections[{index}]"
        if not isinstance(selection, str) or not _SELECTION.fullmatch(selection):
            raise RequestError(f"{path} must be a 'Type/id' string such as 'MedicationRequest/103'")
        if selection not in known:
            raise RequestError(f"{path} '{selection}' names no resource in context.draftOrders")
    return tuple(value)


def _required_string(obj: dict[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise RequestError(f"{path} is required and must be a non-empty string")
    return value


def _optional_string(obj: dict[str, Any], key: str, path: str) -> str | None:
    """A string, or None when absent, null or empty (an empty id names nothing and renders no token)."""
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise RequestError(f"{path}, when present, must be a string")
    return value or None


def _required_object(obj: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise RequestError(f"{path} is required and must be a JSON object")
    return value


def _optional_object(obj: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, dict):
        raise RequestError(f"{path}, when present, must be a JSON object")
    return value


def _show(value: str, limit: int = 64) -> str:
    """Client input for a reason, cut short so a hostile value cannot bloat the response."""
    return value if len(value) <= limit else value[:limit] + "..."
