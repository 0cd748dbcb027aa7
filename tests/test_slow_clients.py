"""The server as deployed (`ivig-cds serve`, production settings, two workers) against slow and idle clients, on
loopback: slow sockets must not starve legitimate calls, deadlines end them, oversized requests are refused before
they are read, and the access log never shows a token sent in the URL."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.service_process import BODY, SELECT, Server, serving


def is_open(sock: socket.socket) -> bool:
    """Has the server not closed this connection?"""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


class Slowloris:
    """Sockets that send a request head a byte at a time, POSTs that send their head and then sit on the body, and
    sockets that send nothing; none authenticated. Bounded: at most ``seconds`` of dribbling, then all are closed."""

    def __init__(self, port: int, *, dribblers: int, idle_posts: int, silent: int, seconds: float = 30) -> None:
        self.dribblers = [socket.create_connection(("127.0.0.1", port)) for _ in range(dribblers)]
        for s in self.dribblers:
            s.sendall(f"POST {SELECT} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
        self.idle_posts = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle_posts)]
        for s in self.idle_posts:
            s.sendall(f"POST {SELECT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY[:10])
        self.silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(silent)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._dribble, args=(seconds,), daemon=True)
        self._thread.start()

    def _dribble(self, seconds: float) -> None:
        ends = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < ends:
            for s in self.dribblers:
                with contextlib.suppress(OSError):
                    s.send(b"X")
            self._stop.wait(0.5)

    def open_dribblers(self) -> int:
        return sum(map(is_open, self.dribblers))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for s in self.dribblers + self.idle_posts + self.silent:
            s.close()


def test_200_slow_sockets_do_not_starve_a_legitimate_call(tmp_path):
    with serving(tmp_path) as server:
        for _ in range(3):  # warm up both workers
            server.call()
        usual = [server.call() for _ in range(10)]
        assert {status for status, _ in usual} == {200}
        attack = Slowloris(server.port, dribblers=200, idle_posts=30, silent=30)
        try:
            time.sleep(1.5)  # every slow socket accepted and dribbling
            under_attack = [server.call() for _ in range(10)]
            still_open = attack.open_dribblers()
        finally:
            attack.close()
    usual_median = statistics.median(t for _, t in usual)
    attacked_median = statistics.median(t for _, t in under_attack)
    print(f"\nslowloris: usual call median {usual_median * 1000:.1f} ms; with 200 dribbling + 30 idle POST + 30 silent sockets "
          f"median {attacked_median * 1000:.1f} ms, max {max(t for _, t in under_attack) * 1000:.1f} ms; "
          f"{still_open}/200 dribblers still connected")
    assert still_open >= 150  # the attack was in force while the calls were made
    assert {status for status, _ in under_attack} == {200}
    assert attacked_median <= 5 * usual_median + 0.25, (usual_median, attacked_median)


def test_deadlines_end_slow_and_idle_connections(tmp_path):
    with serving(tmp_path, IVIG_CDS_REQUEST_READ_SECONDS="2", IVIG_CDS_KEEPALIVE_SECONDS="1") as server:
        attack = Slowloris(server.port, dribblers=5, idle_posts=5, silent=5, seconds=20)
        try:
            deadline = time.monotonic() + 15  # generous: the server's deadlines are 1 s (silent) and 2 s (slow)
            while time.monotonic() < deadline and any(map(is_open, attack.dribblers + attack.idle_posts + attack.silent)):
                time.sleep(0.2)
            assert not any(map(is_open, attack.dribblers + attack.idle_posts + attack.silent))
        finally:
            attack.close()
        assert server.call()[0] == 200


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data``; return everything the server answers until it closes (at most 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return answer


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("server")) as running:
        yield running


def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(server):
    answer = raw_exchange(server.port, f"POST {SELECT} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"X-Content-Type-Options: nosniff" in head
    assert json.loads(body)["issue"][0]["diagnostics"] == "the request body is larger than 1000000 bytes"


def test_a_head_over_the_limit_is_refused(server):
    answer = raw_exchange(server.port, f"GET /cds-services HTTP/1.1\r\nHost: x\r\nX-Pad: {'a' * 70_000}".encode())
    assert answer.startswith(b"HTTP/1.1 431") and b"OperationOutcome" in answer


def test_keep_alive_pipelining_and_expect_continue_still_work(server):
    with requests.Session() as session:  # one connection, several requests
        assert [session.get(server.base + "/cds-services", timeout=10).status_code for _ in range(3)] == [200] * 3
    two = b"GET /cds-services HTTP/1.1\r\nHost: x\r\n\r\nGET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    # both answered, in order: discovery needs no JWT, the OpenAPI document does
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", raw_exchange(server.port, two)) == [b"200", b"401"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(f"POST {SELECT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n"
                  "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(BODY)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401") and b"100 Continue" not in answer


def test_a_token_in_the_url_is_refused_and_never_logged(server):
    secret = "eyJhbGciOiJFUzM4NCJ9.c2VjcmV0LXRva2Vu.c2lnbmF0dXJl"
    response = requests.post(f"{server.base}{SELECT}?access_token={secret}", data=BODY, timeout=10,
                             headers={"Content-Type": "application/json", "Referer": f"https://ehr.example.org/?access_token={secret}"})
    assert response.status_code == 400 and "Authorization header" in response.json()["issue"][0]["diagnostics"]
    deadline = time.monotonic() + 10
    while SELECT not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.log.read_text()
    access = [line for line in server.log_lines() if line["logger"] == "cds_service.access" and line["method"] == "POST"]
    assert (SELECT, 400) in [(line["path"], line["status"]) for line in access]
    assert secret not in log and "c2VjcmV0" not in log
