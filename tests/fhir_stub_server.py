"""A tiny FHIR-like HTTP server for tests: canned answers per path+query, real sockets.

    with FhirStub() as fhir:
        fhir.add("Patient/123", {"resourceType": "Patient", "id": "123"})
        fhir.add("Condition?patient=123", status=500)
        fhir.add("Observation?patient=123", searchset([...]), delay=2.0)
        fhir.add("Coverage?patient=123", raw=b"<html>")
        fhir.base_url          # http://127.0.0.1:<port>/fhir
        fhir.requests          # [Recorded(method, target, headers), ...]

Routes are matched on the exact percent-decoded request target after the base path
("Patient/123", "Condition?patient=123"). Unknown routes answer 404 with an OperationOutcome.
"""
from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

BASE_PATH = "/fhir"


@dataclass(frozen=True)
class Canned:
    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    content_type: str = "application/fhir+json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Recorded:
    method: str
    target: str  # relative to the base, e.g. "Patient/123"
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


def searchset(entries: list[dict], next_url: str | None = None, total: int | None = None) -> dict:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset",
                              "entry": [{"resource": r, "search": {"mode": "match"}} for r in entries]}
    if total is not None:
        bundle["total"] = total
    if next_url:
        bundle["link"] = [{"relation": "self", "url": "self-link"}, {"relation": "next", "url": next_url}]
    return bundle


def operation_outcome(code: str = "exception", diagnostics: str = "stub error", severity: str = "error") -> dict:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]}


class FhirStub:
    def __init__(self) -> None:
        self.routes: dict[str, Canned] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        name="fhir-stub", daemon=True)

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.origin + BASE_PATH

    def add(self, target: str, body: dict | None = None, *, status: int = 200, delay: float = 0.0,
            raw: bytes | None = None, content_type: str = "application/fhir+json",
            headers: dict[str, str] | None = None) -> None:
        """Serve `body` (JSON) or `raw` bytes at base/target with `status`, after `delay` seconds."""
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        self.routes[target.lstrip("/")] = Canned(status, payload, delay, content_type,
                                                 tuple((headers or {}).items()))

    def add_pages(self, target: str, pages: list[list[dict]]) -> None:
        """Serve a searchset at `target` whose pages are chained by absolute `next` links
        (base?_getpages=p<n>, HAPI style)."""
        targets = [target] + [f"?_getpages=p{n}" for n in range(2, len(pages) + 1)]
        for n, resources in enumerate(pages):
            next_url = f"{self.base_url}{targets[n + 1]}" if n + 1 < len(pages) else None
            self.add(targets[n], searchset(resources, next_url, total=sum(map(len, pages))))

    def requests_to(self, target: str) -> list[Recorded]:
        return [r for r in self.requests if r.target == target.lstrip("/")]

    def start(self) -> FhirStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed handlers
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FhirStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        target = unquote(handler.path)  # match as a server would decode it
        target = target[len(BASE_PATH):] if target.startswith(BASE_PATH) else target
        target = target.lstrip("/")
        with self._lock:
            self.requests.append(Recorded(handler.command, target,
                                          {k.lower(): v for k, v in handler.headers.items()}))
        canned = self.routes.get(target) or Canned(
            404, json.dumps(operation_outcome("not-found", f"no route {target}")).encode())
        if canned.delay and self._stopping.wait(canned.delay):
            return
        handler.send_response(canned.status)
        handler.send_header("Content-Type", canned.content_type)
        handler.send_header("Content-Length", str(len(canned.body)))
        for name, value in canned.headers:
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(canned.body)


def _handler_for(stub: FhirStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                stub._answer(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
