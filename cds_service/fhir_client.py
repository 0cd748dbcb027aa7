"""The only module that talks HTTP to a CDS Client's FHIR server.

The access token is held privately and sent only as ``Authorization: Bearer`` to URLs under the
server base given at construction. It never appears in exceptions, reprs or logs. Redirects are not
followed (a redirect could carry the token to another host); paging ``next`` links are followed only
when they lie under the same base.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from .fhirjson import obj, objects, text

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
_GONE_ON_READ = (404, 410)  # a read of a resource that does not (or no longer) exist: "no data"


class FhirReadError(Exception):
    """Why a query could not be answered (timeout, connection failure, HTTP status, non-FHIR body).

    ``key`` names what was asked for (the relative URL here; resolve() reports the prefetch key);
    ``code`` is the OperationOutcome issue type to report: "timeout" or "exception".
    """

    def __init__(self, key: str, reason: str, *, code: str = "exception") -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason
        self.code = code


class FhirClient:
    """Reads and searches against one FHIR server base.

    ``timeout`` is the budget for one ``get()`` call, all pages included. Without a ``session``
    each call uses its own short-lived ``requests.Session``, so one client may be shared by threads.
    """

    def __init__(
        self,
        base_url: str,
        access_token: str | None,
        *,
        timeout: float,
        max_pages: int = 10,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_pages = max_pages
        self._token = access_token
        self._session = session

    def __repr__(self) -> str:
        auth = "bearer token" if self._token else "no token"
        return f"FhirClient({self.base_url!r}, {auth}, timeout={self.timeout})"

    def get(self, relative_url: str) -> dict | None:
        """GET base/relative_url. Returns the resource (a searchset with all pages merged), or None
        for 404/410 on a read. Raises FhirReadError for anything else.

        A search with ``_count`` asks for the first N matches in its ``_sort`` order (the latest
        weight, the newest labs): its first page is the answer, and further pages are not read."""
        relative_url = relative_url.lstrip("/")
        deadline = time.monotonic() + self.timeout
        with _SessionScope(self._session) as session:
            resource = self._fetch(session, f"{self.base_url}/{relative_url}", relative_url, deadline,
                                   missing_ok=_is_read(relative_url))
            if resource is not None and resource["resourceType"] == "Bundle" and wants_every_page(relative_url):
                resource = self._follow_pages(session, resource, relative_url, deadline)
            return resource

    def complete(self, bundle: dict, key: str = "Bundle") -> dict:
        """Follow a partial searchset's ``next`` links (e.g. a paginated prefetch Bundle)."""
        deadline = time.monotonic() + self.timeout
        with _SessionScope(self._session) as session:
            return self._follow_pages(session, bundle, key, deadline, pages=1)

    # -- internals ---------------------------------------------------------------------------

    def _follow_pages(self, session: requests.Session, bundle: dict, key: str, deadline: float,
                      pages: int = 1) -> dict:
        merged = dict(bundle)
        entries = list(bundle.get("entry") or [])
        page = bundle
        while (next_url := next_link(page)) is not None:
            if pages >= self.max_pages:
                raise FhirReadError(key, f"search has more than {self.max_pages} pages; result would be incomplete")
            next_url = urljoin(self.base_url + "/", next_url)
            if not self._under_base(next_url):
                raise FhirReadError(key, f"next link {_origin(next_url)}... is not on the FHIR server "
                                         f"{self.base_url}; not followed")
            page = self._fetch(session, next_url, key, deadline, missing_ok=False)
            if page is None or page.get("resourceType") != "Bundle":
                raise FhirReadError(key, "next link did not return a Bundle")
            entries.extend(page.get("entry") or [])
            pages += 1
        merged["link"] = [link for link in bundle.get("link") or [] if link.get("relation") != "next"]
        if not merged["link"]:
            del merged["link"]
        if entries:
            merged["entry"] = entries
        return merged

    def _fetch(self, session: requests.Session, url: str, key: str, deadline: float, *,
               missing_ok: bool) -> dict | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FhirReadError(key, f"no answer within {self.timeout:g}s", code="timeout")
        headers = {"Accept": FHIR_JSON}
        if self._token and self._under_base(url):
            headers["Authorization"] = f"Bearer {self._token}"
        log.debug("GET %s", _resource_type(url, self.base_url))  # never the query: it names the patient
        try:
            response = session.get(url, headers=headers, timeout=remaining, allow_redirects=False)
            body = response.content
        except requests.Timeout:
            raise FhirReadError(key, f"no answer within {self.timeout:g}s", code="timeout") from None
        except requests.RequestException as exc:
            if time.monotonic() >= deadline:  # a read timeout while streaming the body
                raise FhirReadError(key, f"no answer within {self.timeout:g}s", code="timeout") from None
            raise FhirReadError(key, f"FHIR server unreachable ({type(exc).__name__})") from None

        if missing_ok and response.status_code in _GONE_ON_READ:
            return None
        if response.status_code != 200:
            raise FhirReadError(key, f"FHIR server answered HTTP {response.status_code} {response.reason or ''}".rstrip())
        try:
            resource: Any = json.loads(body)
        except ValueError:
            raise FhirReadError(key, "FHIR server answered a body that is not JSON") from None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise FhirReadError(key, "FHIR server answered JSON that is not a FHIR resource (no resourceType)")
        if resource["resourceType"] == "OperationOutcome":
            raise FhirReadError(key, f"FHIR server answered an OperationOutcome: {outcome_summary(resource)}")
        return resource

    def _under_base(self, url: str) -> bool:
        base, target = urlsplit(self.base_url), urlsplit(url)
        if (base.scheme, base.netloc.lower()) != (target.scheme, target.netloc.lower()):
            return False
        return target.path == base.path or target.path.startswith(base.path.rstrip("/") + "/")


class _SessionScope:
    """Uses the given session, or a fresh one that is closed afterwards."""

    def __init__(self, session: requests.Session | None) -> None:
        self._given = session
        self._own: requests.Session | None = None

    def __enter__(self) -> requests.Session:
        if self._given is not None:
            return self._given
        self._own = requests.Session()
        return self._own

    def __exit__(self, *exc: object) -> None:
        if self._own is not None:
            self._own.close()


def wants_every_page(query: str) -> bool:
    """False for a search limited with _count: the first page is all it asks for."""
    return "_count=" not in query.partition("?")[2]


def next_link(bundle: dict) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return link["url"]
    return None


def outcome_summary(outcome: dict, limit: int = 200) -> str:
    """Short text for an OperationOutcome: its issues' severity, code and diagnostics/details."""
    parts = []
    for issue in objects(outcome.get("issue")):  # an OperationOutcome from a client or server is read like any EHR JSON
        said = text(issue.get("diagnostics")) or text(obj(issue.get("details")).get("text")) or ""
        parts.append(" ".join(p for p in (text(issue.get("severity")), text(issue.get("code")), said) if p))
    summary = "; ".join(parts) or "no issues given"
    return summary if len(summary) <= limit else summary[: limit - 1] + "…"


def _is_read(relative_url: str) -> bool:
    """Type/id (or Type/id/_history/vid): a read. Anything with a query, or a bare Type: a search."""
    path, _, query = relative_url.partition("?")
    return not query and len([p for p in path.split("/") if p]) >= 2


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _resource_type(url: str, base: str) -> str:
    return url[len(base):].lstrip("/").split("?")[0].split("/")[0] or "(base)"
