"""Outbound safety of the FHIR fallback (issue 11): a deadline and a byte cap on every answer, no path outside the
allowed base, FHIR ids only, and no token to non-public addresses in development mode without an allowlist.

Every server here is real and on loopback, started by the test in threads, and records what it received."""
from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cds_service import outbound, search_plan
from cds_service.app import create_app
from cds_service.auth import AuthSettings
from cds_service.config import Settings
from cds_service.fhir_client import FhirClient, FhirReadError, has_dot_segments
from cds_service.prefetch import DataUnavailable, resolve
from tests.conftest import ROOT
from tests.fhir_data import for_patient, hook_request, ivig_order
from tests.fhir_server_fixtures import closed_port_base
from tests.fhir_stub_server import FhirStub, searchset

TOKEN = "outbound-token-5150"
SELECT = "/cds-services/ivig-order-select"
TEMPLATES = {"patient": "Patient/{{context.patientId}}", "conditions": "Condition?patient={{context.patientId}}"}


@dataclass(frozen=True)
class Auth:
    access_token: str = TOKEN
    token_type: str = "Bearer"


@dataclass(frozen=True)
class Req:
    """The attributes of protocol.HookRequest that prefetch.resolve reads."""

    fhir_server: str | None
    patient_id: str = "123"
    fhir_authorization: Auth | None = Auth()
    prefetch: dict = None  # type: ignore[assignment]

    def context_value(self, name: str) -> str | None:
        return {"patientId": self.patient_id}.get(name)


# ---- servers that misbehave ---------------------------------------------------------------------

class HostileServer:
    """An HTTP server on loopback, one thread per connection, that answers every request with `mode`:

    - "drip-body": headers with a Content-Length, then the body one byte each `interval` seconds;
    - "drip-headers": the status line, then the headers one byte each `interval` seconds;
    - "huge": a chunked 200 of `size` bytes of JSON-ish filler, as fast as the client reads.

    It records each request line and how many body bytes it managed to send; `live` counts connections still served.
    """

    def __init__(self, mode: str, *, interval: float = 1.0, size: int = 100_000_000) -> None:
        self.mode, self.interval, self.size = mode, interval, size
        self.requests: list[str] = []
        self.bytes_sent = 0
        self.live = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with server._lock:
                    server.live += 1
                try:
                    server._serve(self.request)
                except OSError:
                    pass  # the client hung up: what we want it to do
                finally:
                    with server._lock:
                        server.live -= 1

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/fhir"

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            data = conn.recv(4096)
            if not data:
                return
            request += data
        with self._lock:
            self.requests.append(request.split(b"\r\n", 1)[0].decode())
        if self.mode == "huge":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"[" + b"0," * 32767 + b"0"
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            sent = 0
            while sent < self.size and not self._stop.is_set():
                conn.sendall(frame)
                sent += len(chunk)
                with self._lock:
                    self.bytes_sent = sent
            return
        if self.mode == "drip-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 100000\r\n\r\n{")
            payload = b" " * 100_000
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            payload = b"X-Slow: " + b"a" * 100_000
        for byte in payload:
            if self._stop.wait(self.interval):
                return
            conn.sendall(bytes([byte]))
            with self._lock:
                self.bytes_sent += 1


@pytest.fixture
def stub() -> Iterator[FhirStub]:
    with FhirStub() as server:
        yield server


def serve_empty_record(stub: FhirStub, app: Any, patient_id: str) -> None:
    """Answer every search the service sends for this patient: the Patient, and no other records."""
    templates = app.application.extensions["ivig_cds"].templates
    queries = {key: template.replace("{{context.patientId}}", patient_id) for key, template in templates.items()}
    for search in search_plan.plan(queries):
        patient = {"resourceType": "Patient", "id": patient_id}
        stub.add(search.url, patient if search.keys == ("patient",) else searchset([]))


def wait_until(condition: Any, limit: float = 10.0) -> bool:
    """Poll `condition` until it holds or `limit` seconds pass (a bound for slow machines, not a measurement)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def failure(request: Req, templates: dict[str, str] = TEMPLATES, **kwargs: Any) -> DataUnavailable:
    with pytest.raises(DataUnavailable) as info:
        resolve(request, templates, **{"timeout": 0.5, **kwargs})
    assert TOKEN not in json.dumps(info.value.operation_outcome())
    return info.value


# ---- a deadline on every answer: no thread reads on after the call has answered --------------------

@pytest.mark.parametrize("mode", ["drip-body", "drip-headers"])
def test_a_dripping_server_is_left_at_the_deadline_and_no_thread_keeps_reading(mode: str) -> None:
    server = HostileServer(mode, interval=1.0)
    try:
        failure(Req(server.base_url))  # the pool's threads and the watchdog now exist
        assert wait_until(lambda: server.live == 0)
        baseline = threading.active_count()
        for _ in range(5):
            err = failure(Req(server.base_url))
            assert set(err.codes.values()) == {"timeout"}, err.reasons
            assert "no answer within 0.5s" in err.reasons["patient"]
        assert len(server.requests) == 12  # every query did reach the server
        # the server notices each hang-up at its next byte; then its threads end, and ours are back in the pool
        assert wait_until(lambda: server.live == 0), f"{server.live} connections still being read"
        assert wait_until(lambda: threading.active_count() <= baseline), (threading.active_count(), baseline)
        assert server.bytes_sent < 12 * 3  # a byte a second: nobody read for long
    finally:
        server.close()


def test_a_dripping_server_answers_412_through_the_service_within_its_budget() -> None:
    server = HostileServer("drip-body", interval=1.0)
    try:
        app = create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(),
                                  fhir_timeout=0.5, fhir_servers=(server.base_url,))).test_client()
        body = hook_request([ivig_order()], fhirServer=server.base_url,
                            fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer"})
        response = app.post(SELECT, json=body)
        assert response.status_code == 412
        assert {issue["code"] for issue in response.get_json()["issue"]} == {"timeout"}
        assert wait_until(lambda: server.live == 0)
    finally:
        server.close()


# ---- a byte cap on every answer ------------------------------------------------------------------

def test_a_100_mb_answer_is_not_read_beyond_the_cap() -> None:
    server = HostileServer("huge", size=100_000_000)
    cap = 1_000_000
    try:
        tracemalloc.start()
        try:
            err = failure(Req(server.base_url), {"conditions": TEMPLATES["conditions"]}, timeout=10, max_bytes=cap)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert err.codes == {"conditions": "too-costly"}
        assert f"more than {cap} bytes" in err.reasons["conditions"]
        assert peak < 8 * cap, f"peak {peak} bytes allocated while reading"
        assert wait_until(lambda: server.live == 0)
        assert server.bytes_sent < 20_000_000  # what the socket buffers took before we hung up, not 100 MB
    finally:
        server.close()


def test_a_declared_length_above_the_cap_is_not_read_at_all(stub: FhirStub) -> None:
    stub.add("Patient/123", raw=b'{"resourceType": "Patient", "id": "123", "x": "' + b"a" * 5000 + b'"}')
    err = failure(Req(stub.base_url), {"patient": TEMPLATES["patient"]}, max_bytes=1000)
    assert err.codes == {"patient": "too-costly"} and "more than 1000 bytes" in err.reasons["patient"]
    assert resolve(Req(stub.base_url), {"patient": TEMPLATES["patient"]}, timeout=2, max_bytes=6000)["patient"]["id"] == "123"


def test_json_nested_too_deeply_in_an_answer_is_412_not_500(stub: FhirStub) -> None:
    stub.add("Patient/123", raw=b'{"resourceType": "Patient", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    err = failure(Req(stub.base_url), {"patient": TEMPLATES["patient"]})
    assert "nested too deeply" in err.reasons["patient"]


# ---- nothing outside the allowed base ----------------------------------------------------------

@pytest.mark.parametrize("suffix", ["/../admin", "/%2e%2e/admin", "/%2E%2e/admin", "/.%2e/admin", "/%252e%252e/admin",
                                    "/x/..", "/./x", "/..%5cadmin"])
def test_dot_segments_in_fhir_server_are_refused_before_the_allowlist_check(stub: FhirStub, suffix: str) -> None:
    app = create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(),
                              fhir_servers=(stub.base_url,))).test_client()
    body = hook_request([ivig_order()], fhirServer=stub.base_url + suffix,
                        fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer"})
    response = app.post(SELECT, json=body)
    assert response.status_code == 400, response.get_json()
    assert "'..' path segments" in response.get_json()["issue"][0]["diagnostics"]
    assert stub.requests == []


@pytest.mark.parametrize("patient_id, status", [("..", 400), (".", 400), ("..%2fadmin", 400), ("a/../b", 400),
                                                ("\ud800", 400), ("x" * 65, 400), ("ok-id.1", 200)])
def test_a_patient_id_must_be_a_fhir_id(stub: FhirStub, patient_id: str, status: int) -> None:
    app = create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(),
                              fhir_servers=(stub.base_url,))).test_client()
    if status == 200:
        serve_empty_record(stub, app, patient_id)
    body = for_patient(hook_request([ivig_order()], fhirServer=stub.base_url,
                                    fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer"}), patient_id)
    response = app.post(SELECT, json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 400:
        assert "context.patientId must be a FHIR id" in response.get_json()["issue"][0]["diagnostics"]
        assert stub.requests == []
    else:
        assert stub.requests and all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in stub.requests)


@pytest.mark.parametrize("next_path", ["/Condition/../../admin?p=2", "/%2e%2e/admin?p=2", "/Condition%2f..%2f..%2fadmin",
                                       "/../fhir/Condition?p=2"])
def test_a_next_link_with_dot_segments_is_not_followed(stub: FhirStub, next_path: str) -> None:
    stub.add("Condition?patient=123", searchset([{"resourceType": "Condition", "id": "c1"}],
                                                next_url=stub.base_url + next_path))
    err = failure(Req(stub.base_url), {"conditions": TEMPLATES["conditions"]})
    assert err.codes == {"conditions": "forbidden"}
    assert "not followed" in err.reasons["conditions"]
    assert [r.target for r in stub.requests] == ["Condition?patient=123"]


def test_dot_segment_detection() -> None:
    for bad in ("/fhir/..", "/fhir/../x", "/%2e%2E/x", "/a/.%2E", "/a/%252e%252e/b", "http://h/a/../b", "/a/..\\b"):
        assert has_dot_segments(bad), bad
    for good in ("/fhir/R4", "/a/..b/c", "/a/b.c", "/a/...", "http://h/fhir/Patient/a.b"):
        assert not has_dot_segments(good), good


# ---- development mode: no token to non-public addresses unless allowlisted ---------------------------

def dev_app(*allowlist: str):
    return create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(),
                               fhir_timeout=1.0, fhir_servers=allowlist)).test_client()


def test_development_without_allowlist_refuses_loopback_alike_for_open_and_closed_ports(stub: FhirStub) -> None:
    app = dev_app()
    answers = []
    for base in (stub.base_url, closed_port_base(), "http://localhost:9/fhir", "http://[::1]:8080/fhir",
                 "http://10.1.2.3/fhir", "http://192.168.0.1/fhir", "http://169.254.169.254/latest",
                 "http://0.0.0.0:80/fhir", "http://100.64.0.1/fhir", "http://[::ffff:127.0.0.1]/fhir",
                 "http://no-such-host.invalid/fhir"):
        body = hook_request([ivig_order()], fhirServer=base, fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer"})
        response = app.post(SELECT, json=body)
        assert response.status_code == 412, (base, response.get_json())
        outcome = response.get_json()
        assert {issue["code"] for issue in outcome["issue"]} == {"forbidden"}
        answers.append(json.dumps(outcome, sort_keys=True))
    assert len(set(answers)) == 1  # one answer for all: nothing tells an open port from a closed one
    assert "non-public address" in answers[0] and TOKEN not in answers[0]
    assert stub.requests == []


def test_development_with_loopback_allowlisted_calls_it(stub: FhirStub) -> None:
    app = dev_app(stub.base_url)
    serve_empty_record(stub, app, "pat-1")
    body = hook_request([ivig_order()], fhirServer=stub.base_url, fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer"})
    assert app.post(SELECT, json=body).status_code == 200
    assert stub.requests and all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in stub.requests)


def test_the_address_is_checked_again_on_connecting(stub: FhirStub) -> None:
    """Even past the check in resolve (a name that resolved to a public address a moment ago, say), a public-only
    connection goes only to a public address, the one it resolved itself."""
    client = FhirClient(stub.base_url, TOKEN, timeout=1, public_only=True)
    with pytest.raises(FhirReadError) as info:
        client.get("Patient/123")
    assert info.value.code == "forbidden" and info.value.reason == outbound.ADDRESS_REFUSED
    assert stub.requests == []


def test_public_address_classification() -> None:
    for address in ("8.8.8.8", "2001:4860:4860::8888", "1.1.1.1"):
        assert outbound.is_public_address(address), address
    for address in ("127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
                    "::1", "fe80::1%eth0", "fc00::1", "::ffff:10.0.0.1", "224.0.0.1", "255.255.255.255"):
        assert not outbound.is_public_address(address), address


# ---- the shared pool and sessions --------------------------------------------------------------------

def test_one_pooled_session_per_base_and_the_token_only_in_each_request(stub: FhirStub) -> None:
    first = outbound.session(stub.base_url + "/a")
    assert outbound.session(stub.base_url) is first  # per origin
    stub.add("Patient/123", {"resourceType": "Patient", "id": "123"})
    resolve(Req(stub.base_url), {"patient": TEMPLATES["patient"]}, timeout=2)
    resolve(Req(stub.base_url, fhir_authorization=Auth("other-token-1")), {"patient": TEMPLATES["patient"]}, timeout=2)
    assert [r.headers.get("authorization") for r in stub.requests] == [f"Bearer {TOKEN}", "Bearer other-token-1"]
    assert "authorization" not in {name.lower() for name in first.headers}
    assert outbound.executor(6) is outbound.executor(6)


def test_the_pool_is_made_anew_in_a_forked_process() -> None:
    import os

    pool = outbound.executor(6)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a gunicorn worker, say
        try:
            child_pool = outbound.executor(6)
            works = child_pool.submit(lambda: 42).result(timeout=5) == 42
            os.write(write, b"new" if child_pool is not pool and works else b"old")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.waitpid(pid, 0)
    assert answer == b"new"
