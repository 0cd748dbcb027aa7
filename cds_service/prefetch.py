"""Prefetch: take what the CDS Client sent, fetch what it did not (CDS Hooks 2.0 §2.3/2.4).

Per template key (see ``resolve``):

====================================  ==========================================================
``request.prefetch[key]``             result
====================================  ==========================================================
a FHIR resource / searchset Bundle    used as sent (OperationOutcome entries dropped; a ``next``
                                      link is followed on fhirServer)
``null``                              ``None``: the client says there is no data
absent, an OperationOutcome, or not   fetched from fhirServer; ``None`` if the template has a
a FHIR resource                       token with no value here (e.g. no encounterId)
====================================  ==========================================================

Keys that can be had neither way raise ``DataUnavailable``: the service answers 412 with its
``operation_outcome()``. An id that is put into a query must be a FHIR id, and fhirServer must have no
``.``/``..`` path segments: else ``RequestError`` (400), before anything is sent.

Fetches run on the process's shared thread pool and keep-alive sessions (outbound), all within one
deadline per call; Observation searches that differ only in their codes are sent as one (search_plan).
"""
from __future__ import annotations

import contextvars
import logging
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote

import requests

from . import metrics, outbound, search_plan
from .errors import RequestError, ServiceError, operation_outcome
from .fhir_client import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_PARALLEL,
    FhirClient,
    FhirReadError,
    has_dot_segments,
    next_link,
    outcome_summary,
    wants_every_page,
)
from .fhirjson import objects

log = logging.getLogger(__name__)

Prefetch = dict[str, dict | None]  # key -> resource / searchset Bundle / None ("no data")

_ABSENT = object()  # marks a prefetch key the client did not send

# Seconds resolve() waits beyond `timeout` for the fetches' own timeout errors before giving up on them.
_GRACE = 0.25


class _Authorization(Protocol):
    @property
    def access_token(self) -> str: ...


class _Request(Protocol):
    """The attributes of protocol.HookRequest that this module uses."""

    @property
    def fhir_server(self) -> str | None: ...
    @property
    def fhir_authorization(self) -> _Authorization | None: ...
    @property
    def prefetch(self) -> Mapping[str, Any]: ...

    def context_value(self, name: str) -> str | None: ...


class DataUnavailable(ServiceError):
    """Needed data could be had neither from prefetch nor from the FHIR server: the service answers 412."""

    def __init__(self, reasons: dict[str, str], codes: dict[str, str] | None = None) -> None:
        super().__init__("prefetch data unavailable: " + "; ".join(f"{k}: {r}" for k, r in reasons.items()))
        self.reasons = reasons  # key -> why
        self.codes = {key: (codes or {}).get(key, "exception") for key in reasons}  # key -> issue type

    def operation_outcome(self) -> dict:
        """One issue per prefetch key that could not be had, with its issue type and why."""
        return operation_outcome((self.codes[key], f"prefetch key '{key}': {reason}") for key, reason in self.reasons.items())


# ---- tokens (CDS Hooks 2.0 §2.4) ------------------------------------------------------------

_TOKEN = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_CONTEXT_TOKEN = re.compile(r"context\.([A-Za-z][A-Za-z0-9_]*)")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
_REFERENCE = re.compile(r"(?:^|/)([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_RELATIVE_REFERENCE = re.compile(r"[A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def render(template: str, request: _Request) -> str | None:
    """Fill the ``{{...}}`` tokens of a prefetch template.

    Only CDS Hooks 2.0 tokens: ``context.<root field with a primitive value>`` and the user tokens
    derived from ``context.userId`` ("Practitioner/123" -> ``userPractitionerId`` = "123").
    Values are percent-encoded (``/`` kept). Returns None when a token has no value in this request;
    raises ValueError for a token that is not valid 2.0 syntax (FHIRPath, nested paths, ...), and
    RequestError (400) for an id that is not a FHIR id (``context.*Id``; ``context.userId`` is Type/id).
    """
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        value = _token_value(match.group(1), request)
        if value is None:
            missing = True
            return ""
        _check_id(match.group(1), value)
        return quote(value, safe="/")

    rendered = _TOKEN.sub(fill, template)
    return None if missing else rendered


def _token_value(token: str, request: _Request) -> str | None:
    if m := _CONTEXT_TOKEN.fullmatch(token):
        value = request.context_value(m.group(1))
    elif token in _USER_TOKENS:
        user = request.context_value("userId")
        ref = _REFERENCE.search(user) if isinstance(user, str) else None
        value = ref.group(2) if ref and ref.group(1) == _USER_TOKENS[token] else None
    else:
        raise ValueError(f"unsupported prefetch token {{{{{token}}}}}: CDS Hooks 2.0 allows only "
                         f"context.<field> and {', '.join(_USER_TOKENS)}")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)) and str(value) != "":
        return str(value)
    return None  # absent, or not a primitive (selections, draftOrders)


def _check_id(token: str, value: str) -> None:
    """Ids go into URL paths: anything but the FHIR id syntax could change which path is asked
    (``..``, ``/``, ``%2e``) or fail to encode (a lone surrogate)."""
    name = token.removeprefix("context.")
    if not name.endswith("Id") and token not in _USER_TOKENS:
        return
    if name == "userId":
        ok, syntax = _RELATIVE_REFERENCE.fullmatch(value) is not None, "Type/id"
        value = value.partition("/")[2]
    else:
        ok, syntax = _FHIR_ID.fullmatch(value) is not None, "a FHIR id"
    if not ok or value in (".", ".."):
        raise RequestError(f"context.{name} must be {syntax}: 1 to 64 letters, digits, '-' and '.' "
                           "(and not '.' or '..'), since it is put into a FHIR query")


# ---- resolve --------------------------------------------------------------------------------

def resolve(
    request: _Request,
    templates: Mapping[str, str],
    *,
    timeout: float,
    max_workers: int = DEFAULT_MAX_PARALLEL,
    session: requests.Session | None = None,
    may_call: Callable[[str], bool] = lambda fhir_server: True,
    public_only: bool = False,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Prefetch:
    """Prefetch data for every template key, from the request or else from fhirServer (in parallel).

    Raises DataUnavailable listing every key that could be had neither way. Wall time stays close to
    one ``timeout`` however many keys are fetched, and no fetch reads on after it. ``public_only``
    (development mode without an allowlist) refuses, alike for every such address, a fhirServer that
    resolves to a loopback, private or other non-public address. A given ``session`` replaces the
    process's pooled one (tests).
    """
    sent: Mapping[str, Any] = request.prefetch or {}
    result: Prefetch = {}
    queries: dict[str, str] = {}  # key -> query to fetch
    completions: dict[str, dict] = {}  # key -> prefetched Bundle whose next pages are to be read
    why_missing: dict[str, str] = {}  # key -> why prefetch did not give it (for the 412 text)

    for key, template in templates.items():
        value = sent.get(key, _ABSENT)
        if value is None:
            result[key] = None
            continue
        failure, screened = _screened(value) if _is_resource(value) else (None, value)
        if _is_resource(value) and value["resourceType"] != "OperationOutcome" and failure is None:
            value = screened
            if next_link(value) is None or not wants_every_page(template):
                result[key] = value
            else:
                completions[key] = value
                why_missing[key] = "prefetched Bundle has further pages (next link)"
            continue
        url = render(template, request)
        if url is None:  # a token has no value (e.g. no encounterId): nothing to ask for
            result[key] = None
            continue
        queries[key] = url
        why_missing[key] = _why_not_prefetched(value)

    if not queries and not completions:
        return result
    keys = [*queries, *completions]
    if not request.fhir_server:
        raise DataUnavailable({key: f"{why_missing[key]} and the request has no fhirServer" for key in keys},
                              {key: "not-found" for key in keys})
    if has_dot_segments(request.fhir_server):
        raise RequestError("fhirServer must not have '.' or '..' path segments (also percent-encoded)")
    refused = None if may_call(request.fhir_server) else "fhirServer is not on this service's allowlist (no request was sent)"
    if refused is None and public_only:
        refused = outbound.refusal_for_public_only(request.fhir_server)
    if refused is not None:
        raise DataUnavailable({key: f"{why_missing[key]} and {refused}" for key in keys}, {key: "forbidden" for key in keys})

    token = request.fhir_authorization.access_token if request.fhir_authorization else None
    client = FhirClient(request.fhir_server, token, timeout=timeout, max_pages=max_pages, max_bytes=max_bytes,
                        session=session, public_only=public_only, pool_size=max_workers)
    deadline = time.monotonic() + timeout
    jobs: dict[tuple[str, ...], Callable[[], dict[str, dict | None]]] = {}

    def searched(search: search_plan.Search) -> dict[str, dict | None]:
        return search.split(client.get(search.url, deadline=deadline), lambda query: client.get(query, deadline=deadline))

    def completed(key: str, bundle: dict) -> dict[str, dict | None]:
        return {key: client.complete(bundle, key, deadline=deadline)}

    for search in search_plan.plan(queries):
        jobs[search.keys] = partial(searched, search)
    for key, bundle in completions.items():
        jobs[(key,)] = partial(completed, key, bundle)
    result.update(_run_parallel(jobs, why_missing, timeout, max_workers))
    return {key: result[key] for key in templates}  # template order


def _run_parallel(jobs: dict[tuple[str, ...], Callable[[], dict[str, dict | None]]],
                  why_missing: dict[str, str], timeout: float, max_workers: int) -> Prefetch:
    """Run the jobs (each answers one or more keys) on the process's pool; wait at most about ``timeout``."""
    pool = outbound.executor(max_workers)
    started = time.monotonic()
    counted = metrics.current()
    counted.fhir_queries.inc(len(jobs))
    # each job runs in a copy of this thread's context, so what it logs carries this request's id (jsonlog)
    futures: dict[tuple[str, ...], Future[dict[str, dict | None]]] = {
        keys: pool.submit(contextvars.copy_context().run, job) for keys, job in jobs.items()}
    wait(futures.values(), timeout=timeout + _GRACE)
    for future in futures.values():
        future.cancel()  # still queued behind busy workers: never started; running ones end at their deadline

    fetched: Prefetch = {}
    reasons: dict[str, str] = {}
    codes: dict[str, str] = {}

    def fail(keys: tuple[str, ...], reason: str, code: str) -> None:
        counted.fhir_failures.labels(code).inc()
        for key in keys:
            reasons[key], codes[key] = f"{why_missing[key]}; {reason}", code

    for keys, future in futures.items():
        if future.cancelled():
            fail(keys, f"not fetched within {timeout:g}s (all workers busy)", "timeout")
            continue
        if not future.done():
            fail(keys, f"FHIR server gave no answer within {timeout:g}s", "timeout")
            continue
        try:
            answers = future.result()
        except FhirReadError as exc:
            fail(keys, exc.reason, exc.code)
            continue
        for key, value in answers.items():
            failure, screened = _screened(value) if value is not None else (None, None)
            if failure is not None:
                fail((key,), f"the search reported an error ({outcome_summary(failure)})", "exception")
                continue
            fetched[key] = screened
    log.debug("prefetch: %d search(es) in %.3fs", len(jobs), time.monotonic() - started)
    if reasons:
        log.warning("prefetch unavailable for keys %s", {key: codes[key] for key in reasons})  # reasons may name the patient
        raise DataUnavailable(reasons, codes)
    return fetched


def _screened(resource: dict) -> tuple[dict | None, dict]:
    """A Bundle's failure and the Bundle without its outcomes, from one pass over the entries (a prefetch may hold
    thousands):

    - the first OperationOutcome entry with an error or fatal issue, else None: the search did not fully run, so an
      empty or partial result must not be read as "no data" (a missed diagnosis is a wrong card);
    - the Bundle without its OperationOutcome entries (search.mode 'outcome' or any OperationOutcome)."""
    entries = resource.get("entry")
    if resource.get("resourceType") != "Bundle" or not isinstance(entries, list):
        return None, resource
    failure, kept = None, []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        found = entry.get("resource")
        if isinstance(found, dict) and found.get("resourceType") == "OperationOutcome":
            if failure is None and any(issue.get("severity") in ("error", "fatal") for issue in objects(found.get("issue"))):
                failure = found
            continue
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        kept.append(entry)
    if len(kept) == len(entries):
        return failure, resource
    stripped = dict(resource)
    if kept:
        stripped["entry"] = kept
    else:
        del stripped["entry"]
    return failure, stripped


def _why_not_prefetched(value: Any) -> str:
    if value is _ABSENT:
        return "not prefetched"
    if _is_resource(value) and (failure := _screened(value)[0]) is not None:
        return f"client's search reported an error (OperationOutcome: {outcome_summary(failure)})"
    if _is_resource(value):  # an OperationOutcome
        return f"client could not prefetch it (OperationOutcome: {outcome_summary(value)})"
    return "prefetched value is not a FHIR resource"


def _is_resource(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("resourceType"), str)
