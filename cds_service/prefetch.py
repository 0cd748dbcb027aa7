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
``operation_outcome()``.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol
from urllib.parse import quote

import requests

from .fhirjson import obj, objects
from .fhir_client import FhirClient, FhirReadError, next_link, outcome_summary, wants_every_page

log = logging.getLogger(__name__)

Prefetch = dict[str, dict | None]  # key -> resource / searchset Bundle / None ("no data")

_ABSENT = object()  # marks a prefetch key the client did not send

# Seconds resolve() waits beyond `timeout` for the fetches' own timeout errors before giving up on them.
_GRACE = 0.25


class _Authorization(Protocol):
    access_token: str


class _Request(Protocol):
    """The attributes of protocol.HookRequest that this module uses."""

    fhir_server: str | None
    fhir_authorization: _Authorization | None
    prefetch: Mapping[str, Any]

    def context_value(self, name: str) -> str | None: ...


class DataUnavailable(Exception):
    """Needed data could be had neither from prefetch nor from the FHIR server: the service answers 412."""

    def __init__(self, reasons: dict[str, str], codes: dict[str, str] | None = None) -> None:
        super().__init__("prefetch data unavailable: " + "; ".join(f"{k}: {r}" for k, r in reasons.items()))
        self.reasons = reasons  # key -> why
        self.codes = {key: (codes or {}).get(key, "exception") for key in reasons}  # key -> issue type

    def operation_outcome(self) -> dict:
        return {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": self.codes[key], "diagnostics": f"prefetch key '{key}': {reason}"}
                for key, reason in self.reasons.items()
            ],
        }


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


def render(template: str, request: _Request) -> str | None:
    """Fill the ``{{...}}`` tokens of a prefetch template.

    Only CDS Hooks 2.0 tokens: ``context.<root field with a primitive value>`` and the user tokens
    derived from ``context.userId`` ("Practitioner/123" -> ``userPractitionerId`` = "123").
    Values are percent-encoded (``/`` kept). Returns None when a token has no value in this request;
    raises ValueError for a token that is not valid 2.0 syntax (FHIRPath, nested paths, ...).
    """
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        value = _token_value(match.group(1), request)
        if value is None:
            missing = True
            return ""
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


# ---- resolve --------------------------------------------------------------------------------

def resolve(
    request: _Request,
    templates: Mapping[str, str],
    *,
    timeout: float,
    max_workers: int = 6,
    session: requests.Session | None = None,
    may_call: Callable[[str], bool] = lambda fhir_server: True,
    max_pages: int = 10,
) -> Prefetch:
    """Prefetch data for every template key, from the request or else from fhirServer (in parallel).

    Raises DataUnavailable listing every key that could be had neither way. Wall time stays close to
    one ``timeout`` however many keys are fetched. A given ``session`` is shared by the worker threads.
    """
    sent: Mapping[str, Any] = request.prefetch or {}
    result: Prefetch = {}
    jobs: dict[str, Callable[[FhirClient], dict | None]] = {}
    why_missing: dict[str, str] = {}  # key -> why prefetch did not give it (for the 412 text)

    for key, template in templates.items():
        value = sent.get(key, _ABSENT)
        if value is None:
            result[key] = None
            continue
        if _is_resource(value) and value["resourceType"] != "OperationOutcome" and _failure(value) is None:
            value = _without_outcomes(value)
            if next_link(value) is None or not wants_every_page(template):
                result[key] = value
            else:
                jobs[key] = lambda client, bundle=value, key=key: client.complete(bundle, key)
                why_missing[key] = "prefetched Bundle has further pages (next link)"
            continue
        url = render(template, request)
        if url is None:  # a token has no value (e.g. no encounterId): nothing to ask for
            result[key] = None
            continue
        jobs[key] = lambda client, url=url: client.get(url)
        why_missing[key] = _why_not_prefetched(value)

    if not jobs:
        return result
    if not request.fhir_server:
        raise DataUnavailable({key: f"{why_missing[key]} and the request has no fhirServer" for key in jobs},
                              {key: "not-found" for key in jobs})
    if not may_call(request.fhir_server):
        raise DataUnavailable({key: f"{why_missing[key]} and fhirServer is not on this service's allowlist (no request was sent)"
                               for key in jobs}, {key: "forbidden" for key in jobs})

    token = request.fhir_authorization.access_token if request.fhir_authorization else None
    client = FhirClient(request.fhir_server, token, timeout=timeout, max_pages=max_pages, session=session)
    result.update(_run_parallel(client, jobs, why_missing, timeout, max_workers))
    return {key: result[key] for key in templates}  # template order


def _run_parallel(client: FhirClient, jobs: dict[str, Callable[[FhirClient], dict | None]],
                  why_missing: dict[str, str], timeout: float, max_workers: int) -> Prefetch:
    pool = ThreadPoolExecutor(max_workers=min(max_workers, len(jobs)), thread_name_prefix="prefetch")
    started = time.monotonic()
    try:
        futures: dict[str, Future[dict | None]] = {key: pool.submit(job, client) for key, job in jobs.items()}
        wait(futures.values(), timeout=timeout + _GRACE)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # do not wait for stragglers

    fetched: Prefetch = {}
    reasons: dict[str, str] = {}
    codes: dict[str, str] = {}
    for key, future in futures.items():
        if future.cancelled():  # still queued behind max_workers slow fetches
            reasons[key], codes[key] = f"{why_missing[key]}; not fetched within {timeout:g}s (all workers busy)", "timeout"
            continue
        if not future.done():
            reasons[key], codes[key] = f"{why_missing[key]}; FHIR server gave no answer within {timeout:g}s", "timeout"
            continue
        try:
            value = future.result()
        except FhirReadError as exc:
            reasons[key], codes[key] = f"{why_missing[key]}; {exc.reason}", exc.code
            continue
        failure = _failure(value) if value is not None else None
        if failure is not None:
            reasons[key], codes[key] = f"{why_missing[key]}; the search reported an error ({outcome_summary(failure)})", "exception"
            continue
        fetched[key] = _without_outcomes(value) if value is not None else None
    log.debug("prefetch: fetched %d key(s) in %.3fs", len(jobs), time.monotonic() - started)
    if reasons:
        log.warning("prefetch unavailable for keys %s", {key: codes[key] for key in reasons})  # reasons may name the patient
        raise DataUnavailable(reasons, codes)
    return fetched


def _failure(resource: dict) -> dict | None:
    """An OperationOutcome entry with an error or fatal issue: the search did not fully run, so an
    empty or partial result must not be read as "no data" (a missed diagnosis is a wrong card)."""
    if resource.get("resourceType") != "Bundle":
        return None
    for entry in objects(resource.get("entry")):
        outcome = obj(entry.get("resource"))
        if outcome.get("resourceType") == "OperationOutcome":
            if any(issue.get("severity") in ("error", "fatal") for issue in objects(outcome.get("issue"))):
                return outcome
    return None


def _why_not_prefetched(value: Any) -> str:
    if value is _ABSENT:
        return "not prefetched"
    if _is_resource(value) and _failure(value) is not None:
        return f"client's search reported an error (OperationOutcome: {outcome_summary(_failure(value))})"
    if _is_resource(value):  # an OperationOutcome
        return f"client could not prefetch it (OperationOutcome: {outcome_summary(value)})"
    return "prefetched value is not a FHIR resource"


def _is_resource(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("resourceType"), str)


def _without_outcomes(resource: dict) -> dict:
    """A Bundle without its OperationOutcome entries (search.mode 'outcome' or any OperationOutcome)."""
    if resource.get("resourceType") != "Bundle" or not isinstance(resource.get("entry"), list):
        return resource
    kept = [e for e in objects(resource["entry"])
            if obj(e.get("search")).get("mode") != "outcome" and obj(e.get("resource")).get("resourceType") != "OperationOutcome"]
    if kept == resource["entry"]:
        return resource
    stripped = dict(resource)
    if kept:
        stripped["entry"] = kept
    else:
        del stripped["entry"]
    return stripped
