"""The only module that talks HTTP to a CDS Client's FHIR server.

The access token is held privately and sent only as ``Authorization: Bearer`` to URLs under the
server base given at construction, in each request's headers (the keep-alive session is shared by
calls with other tokens, see outbound). It never appears in exceptions, reprs or logs. Redirects are
not followed (a redirect could carry the token to another host); paging ``next`` links are followed
only when they lie under the same base. A URL whose path has a ``.`` or ``..`` segment, also
percent-encoded, is never asked: a server resolving it would answer for a path outside the base.

Each answer is read as a stream, within the query's deadline (a watchdog shuts the socket down when it
passes, however slowly the server drips) and up to ``max_bytes`` (a larger answer is not read further).
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests
import urllib3.exceptions

from . import outbound
from .fhirjson import obj, objects, text

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
_GONE_ON_READ = (404, 410)  # a read of a resource that does not (or no longer) exist: "no data"
_CHUNK = 64 * 1024
DEFAULT_MAX_BYTES = 20_000_000
#: most searchset pages read for one query (IVIG_CDS_FHIR_MAX_PAGES; config.Settings takes its default from here)
DEFAULT_MAX_PAGES = 20
#: FHIR queries one worker process runs at once, and keep-alive connections per FHIR server (IVIG_CDS_FHIR_MAX_PARALLEL)
DEFAULT_MAX_PARALLEL = 6


class FhirReadError(Exception):
    """Why a query could not be answered (timeout, connection failure, HTTP status, non-FHIR body).

    ``key`` names what was asked for (the relative URL here; resolve() reports the prefetch key);
    ``code`` is the OperationOutcome issue type to report: "timeout", "too-costly" (the answer is larger
    than we read), "forbidden" (nothing was sent) or "exception".
    """

    def __init__(self, key: str, reason: str, *, code: str = "exception") -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason
        self.code = code


class FhirClient:
    """Reads and searches against one FHIR server base.

    ``timeout`` is the budget for one ``get()`` call, all pages included, reading included. Without a
    ``session`` the process's pooled keep-alive session for this base is used (outbound.session);
    either way one client may be shared by threads. ``public_only`` refuses to connect to any
    loopback, private or other non-public address (checked on the addresses actually connected to).
    """

    def __init__(
        self,
        base_url: str,
        access_token: str | None,
        *,
        timeout: float,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        session: requests.Session | None = None,
        public_only: bool = False,
        pool_size: int = DEFAULT_MAX_PARALLEL,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if has_dot_segments(self.base_url):
            raise ValueError("FHIR base URL has '.' or '..' path segments")
        self.timeout = timeout
        self.max_pages = max_pages
        self.max_bytes = max_bytes
        self._token = access_token
        self._session = session or outbound.session(self.base_url, public_only=public_only, pool_size=pool_size)

    def __repr__(self) -> str:
        auth = "bearer token" if self._token else "no token"
        return f"FhirClient({self.base_url!r}, {auth}, timeout={self.timeout})"

    def get(self, relative_url: str, *, deadline: float | None = None) -> dict | None:
        """GET base/relative_url. Returns the resource (a searchset with all pages merged), or None
        for 404/410 on a read. Raises FhirReadError for anything else.

        A search with ``_count`` asks for the first N matches in its ``_sort`` order (the latest
        weight, the newest labs): its first page is the answer, and further pages are not read.
        ``deadline`` (time.monotonic()) ends the call sooner than ``timeout`` from now, e.g. the hook call's."""
        relative_url = relative_url.lstrip("/")
        deadline = _earlier(deadline, time.monotonic() + self.timeout)
        url = f"{self.base_url}/{relative_url}"
        if has_dot_segments(url.partition("?")[0]):
            raise FhirReadError(relative_url, "the query's path has a '.' or '..' segment; not sent", code="forbidden")
        resource = self._fetch(url, relative_url, deadline, missing_ok=_is_read(relative_url))
        if resource is not None and resource["resourceType"] == "Bundle" and wants_every_page(relative_url):
            resource = self._follow_pages(resource, relative_url, deadline)
        return resource

    def complete(self, bundle: dict, key: str = "Bundle", *, deadline: float | None = None) -> dict:
        """Follow a partial searchset's ``next`` links (e.g. a paginated prefetch Bundle)."""
        return self._follow_pages(bundle, key, _earlier(deadline, time.monotonic() + self.timeout), pages=1)

    # -- internals ---------------------------------------------------------------------------

    def _follow_pages(self, bundle: dict, key: str, deadline: float, pages: int = 1) -> dict:
        merged = dict(bundle)
        entries = list(bundle.get("entry") or [])
        page = bundle
        while (next_url := next_link(page)) is not None:
            if pages >= self.max_pages:
                raise FhirReadError(key, f"search has more than {self.max_pages} pages; result would be incomplete")
            if has_dot_segments(next_url.partition("?")[0]):
                raise FhirReadError(key, "next link has a '.' or '..' path segment; not followed", code="forbidden")
            next_url = urljoin(self.base_url + "/", next_url)
            if not self._under_base(next_url):
                raise FhirReadError(key, f"next link {_origin(next_url)}... is not on the FHIR server "
                                         f"{self.base_url}; not followed", code="forbidden")
            fetched = self._fetch(next_url, key, deadline, missing_ok=False)
            if fetched is None or fetched.get("resourceType") != "Bundle":
                raise FhirReadError(key, "next link did not return a Bundle")
            page = fetched
            entries.extend(page.get("entry") or [])
            pages += 1
        merged["link"] = [link for link in bundle.get("link") or [] if link.get("relation") != "next"]
        if not merged["link"]:
            del merged["link"]
        if entries:
            merged["entry"] = entries
        return merged

    def _fetch(self, url: str, key: str, deadline: float, *, missing_ok: bool) -> dict | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FhirReadError(key, f"no answer within {self.timeout:g}s", code="timeout")
        headers = {"Accept": FHIR_JSON}
        if self._token and self._under_base(url):
            headers["Authorization"] = f"Bearer {self._token}"
        log.debug("GET %s", _resource_type(url, self.base_url))  # never the query: it names the patient
        with outbound.deadline_scope(deadline) as scope:
            try:
                response = self._session.get(url, headers=headers, timeout=(remaining, remaining),
                                             allow_redirects=False, stream=True)
                try:
                    body = self._read_body(response, key, scope)
                finally:
                    response.close()
            except outbound.AddressRefused as exc:
                raise FhirReadError(key, str(exc), code="forbidden") from None
            except (outbound.DeadlinePassed, requests.Timeout):
                raise FhirReadError(key, f"no answer within {self.timeout:g}s", code="timeout") from None
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                if scope.expired or time.monotonic() >= deadline:  # the watchdog ended a slow read
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
        except RecursionError:
            raise FhirReadError(key, "FHIR server answered JSON nested too deeply to read") from None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise FhirReadError(key, "FHIR server answered JSON that is not a FHIR resource (no resourceType)")
        if resource["resourceType"] == "OperationOutcome":
            raise FhirReadError(key, f"FHIR server answered an OperationOutcome: {outcome_summary(resource)}")
        return resource

    def _read_body(self, response: requests.Response, key: str, scope: outbound.DeadlineScope) -> bytes:
        """The body, decoded, read chunk by chunk: never more than max_bytes, never past the deadline."""
        too_large = f"FHIR server answered more than {self.max_bytes} bytes; not read further"
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FhirReadError(key, too_large, code="too-costly")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = response.raw.read1(_CHUNK, decode_content=True)
            if scope.expired or time.monotonic() >= scope.deadline:
                raise FhirReadError(key, f"no answer within {self.timeout:g}s", code="timeout")
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise FhirReadError(key, too_large, code="too-costly")
            chunks.append(chunk)

    def _under_base(self, url: str) -> bool:
        base, target = urlsplit(self.base_url), urlsplit(url)
        if (base.scheme, base.netloc.lower()) != (target.scheme, target.netloc.lower()):
            return False
        if has_dot_segments(target.path):
            return False
        base_path, path = _decoded(base.path).rstrip("/"), _decoded(target.path)
        return path == base_path or path.startswith(base_path + "/")


def has_dot_segments(url_or_path: str) -> bool:
    """Does this path (or URL) have a '.' or '..' segment, also percent-encoded (once or more) or after a backslash?"""
    path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path
    segments = _decoded(path).replace("\\", "/").split("/")
    return any(segment in (".", "..") for segment in segments)


def _earlier(deadline: float | None, other: float) -> float:
    return other if deadline is None else min(deadline, other)


def _decoded(path: str) -> str:
    """Percent-decoded until nothing changes (a server or proxy may decode twice)."""
    for _ in range(5):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    return path


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
