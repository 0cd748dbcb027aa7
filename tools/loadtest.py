"""Reproduce the red-team measurements on loopback and print the numbers (a tool, not a test: nothing is asserted).

    python tools/loadtest.py                 # this tree
    python tools/loadtest.py --root OTHER    # another checkout of the service (e.g. before a change), same figures

1. Slow connections against legitimate calls: `ivig-cds serve` (production settings, two workers) is started from
   ``--root``; the latency of signed hook calls is measured alone, then with ``--slow`` sockets dribbling a request
   head, ``--idle`` POSTs sitting on their body and ``--idle`` silent sockets held open.
2. Throughput and p99 latency at 1, 8, 32 and 64 concurrent clients, ``--seconds`` each.
3. The replay store: how fast one issuer fills it (verifications a second into the shared SQLite store), when it
   reaches its quota, and whether another issuer is still served then (this tree's code only).

Every loop is bounded in count and time, and only 127.0.0.1 is ever called.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import contextlib

from tests.fhir_data import gbs, hook_request, ivig_order, prefetch, weight

ISS = "https://ehr.example.org"
PUBLIC = "https://cds.example.test"
SELECT = "/cds-services/ivig-order-select"
BODY = json.dumps(hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=[weight(70)]))).encode()
KEY = ec.generate_private_key(ec.SECP384R1())


def jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict:
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": "ES384", "use": "sig"}


def token(audiences: list[str], *, iss: str = ISS, key: ec.EllipticCurvePrivateKey = KEY, kid: str = "ehr-1") -> str:
    now = int(time.time())
    return jwt.encode({"iss": iss, "aud": audiences, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
                      key, algorithm="ES384", headers={"kid": kid, "typ": "JWT"})


def start(root: Path, folder: Path, workers: int, *, extra_env: dict[str, str] | None = None,
          command: list[str] | None = None) -> tuple[subprocess.Popen, int]:
    """A server from `root` (`ivig-cds serve`, or `command` given --port and --workers) in production settings
    trusting KEY, its files in `folder`; returns once it accepts connections."""
    folder.mkdir(parents=True, exist_ok=True)
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk(KEY, "ehr-1")]}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "IVIG_CDS_TRUSTED_ISSUERS": ISS, "IVIG_CDS_JWKS_FILE": str(jwks), "IVIG_CDS_PUBLIC_URL": PUBLIC,
           "IVIG_CDS_REPLAY_STORE": str(folder / "jti.sqlite3"), "IVIG_CDS_KNOWLEDGE_ROOT": str(root),
           "IVIG_CDS_STORE_URL": f"sqlite:///{folder / 'store.sqlite3'}", **(extra_env or {})}
    env.pop("IVIG_CDS_MODE", None)
    argv = command or [sys.executable, "-m", "cds_service.cli", "serve"]
    process = subprocess.Popen([*argv, "--port", str(port), "--workers", str(workers)],
                               cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/cds-services", timeout=2)
            return process, port
        except requests.ConnectionError:
            if process.poll() is not None:
                break
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the service in {root} did not start")


def call(port: int, timeout: float = 35) -> tuple[int, float]:
    """A signed hook call; (status or 0 on a timeout/connection error, seconds). The token names both the public URL
    and the URL called, so a version that builds the audience from the request accepts it too."""
    url = f"http://127.0.0.1:{port}{SELECT}"
    headers = {"Authorization": f"Bearer {token([PUBLIC + SELECT, url])}", "Content-Type": "application/json"}
    started = time.perf_counter()
    try:
        status = requests.post(url, data=BODY, headers=headers, timeout=timeout).status_code
    except requests.RequestException:
        status = 0
    return status, time.perf_counter() - started


def summary(results: list[tuple[int, float]]) -> str:
    times = sorted(t * 1000 for _, t in results)
    ok = sum(1 for status, _ in results if status == 200)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return f"{ok}/{len(results)} answered 200, median {statistics.median(times):7.1f} ms, p99 {p99:7.1f} ms, max {times[-1]:7.1f} ms"


def slow_connections(port: int, slow: int, idle: int, calls: int) -> None:
    usual = [call(port) for _ in range(calls)]
    print(f"  alone:                                   {summary(usual)}")
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(slow)]
    for s in sockets:
        s.sendall(f"POST {SELECT} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
    posts = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
    for s in posts:
        s.sendall(f"POST {SELECT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY[:10])
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
    stop = threading.Event()

    def dribble() -> None:
        ends = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < ends:
            for s in sockets:
                with contextlib.suppress(OSError):
                    s.send(b"X")
            stop.wait(0.5)

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    time.sleep(1.5)
    try:
        attacked = [call(port) for _ in range(calls)]
    finally:
        stop.set()
        thread.join(5)
        for s in sockets + posts + silent:
            s.close()
    print(f"  with {slow} dribbling + {idle} idle POST + {idle} silent: {summary(attacked)}")


def throughput(port: int, clients: int, seconds: float) -> None:
    results: list[tuple[int, float]] = []
    ends = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < ends:
            results.append(call(port, timeout=30))

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    elapsed = time.perf_counter() - started
    print(f"  {clients:3d} clients: {len(results) / elapsed:7.1f} calls/s   {summary(results)}")


def replay_fill_rate(tokens: int) -> None:
    from cds_service.auth import AuthSettings, IssuerOverQuota, JwtVerifier

    other_key = ec.generate_private_key(ec.SECP384R1())
    other = "https://other-ehr.example.org"
    aud = PUBLIC + SELECT
    with tempfile.TemporaryDirectory() as folder:
        quota = tokens // 2
        settings = AuthSettings(trusted_issuers=frozenset({ISS, other}), jwks={"keys": [jwk(KEY, "ehr-1"), jwk(other_key, "other-1")]},
                                replay_store=str(Path(folder) / "jti.sqlite3"), replay_quota_per_issuer=quota)
        verifier = JwtVerifier(settings)
        signed = [f"Bearer {token([aud])}" for _ in range(tokens)]
        accepted = refused = 0
        started = time.perf_counter()
        for header in signed:
            try:
                verifier.verify(header, aud)
                accepted += 1
            except IssuerOverQuota:
                refused += 1
        elapsed = time.perf_counter() - started
        rate = tokens / elapsed
        claims = verifier.verify(f"Bearer {token([aud], iss=other, key=other_key, kid='other-1')}", aud)
        served = claims is not None and claims["iss"] == other
        default = AuthSettings()
        print(f"  one issuer, {tokens} signed tokens as fast as one thread verifies them: {rate:,.0f} verifications/s")
        print(f"  quota {quota}: {accepted} accepted, {refused} refused (429); another issuer still served: {'yes' if served else 'NO'}")
        print(f"  at that rate one issuer reaches the default quota ({default.replay_quota_per_issuer:,}) in "
              f"{default.replay_quota_per_issuer / rate:,.0f} s and is then refused for at most "
              f"{default.max_lifetime_seconds + 2 * default.leeway_seconds} s; no other issuer is affected")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout of the service to start")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slow", type=int, default=200, help="sockets dribbling a request head")
    parser.add_argument("--idle", type=int, default=30, help="idle POSTs, and as many silent sockets")
    parser.add_argument("--calls", type=int, default=10, help="legitimate calls measured alone and under the slow sockets")
    parser.add_argument("--seconds", type=float, default=5, help="length of each throughput run")
    parser.add_argument("--tokens", type=int, default=4000, help="tokens for the replay-store fill rate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        process, port = start(args.root.resolve(), Path(folder), args.workers)
        try:
            for _ in range(3):
                call(port)
            print(f"slow connections against legitimate calls ({args.root.resolve()}, {args.workers} workers):")
            slow_connections(port, args.slow, args.idle, args.calls)
            print("throughput and latency of signed hook calls:")
            for clients in (1, 8, 32, 64):
                throughput(port, clients, args.seconds)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
    print("replay store fill rate (this tree's code):")
    replay_fill_rate(args.tokens)


if __name__ == "__main__":
    main()
