"""Hook calls over real HTTP against a floor: the numbers issue 9 asks for, in one run (a tool: nothing is asserted).

    python tools/http_benchmark.py [--root CHECKOUT] [--seconds S] [--calls N]

Two servers run side by side on loopback, each `--workers` gunicorn workers with the service's worker class and
production settings (JWT required, one-use ES384 tokens signed before the clock starts):
- the service (`ivig-cds serve` from ``--root``, this tree by default: give another checkout for a before/after);
- an echo from this tree on the same server code, which verifies the same JWT and reads the same JSON body as the
  service does, then answers no cards: the cost of being a hook endpoint at all, which no service can go below.
Printed: throughput of each at 1, 4 and 16 clients and the ratio service / echo; the median latency of a plain GBS
call, of a busy record (40 diagnoses, 100 labs, 60 medications) and its ratio to the plain call; and a body of
10,000 resources in prefetch, service against echo. Every figure is a ratio from one run: the client shares the
machine's cores with both servers, alike for both.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fhir_data import condition, days_ago, gbs, hook_request, ivig_order, medication_request, observation, prefetch, weight  # noqa: E402
from tools.loadtest import PUBLIC, start, token  # noqa: E402

SELECT = "/cds-services/ivig-order-select"
LIMITS = {"IVIG_CDS_MAX_BODY_BYTES": "60000000", "IVIG_CDS_MAX_BUNDLE_ENTRIES": "20000"}  # the 10,000-resource body


def bodies() -> dict[str, bytes]:
    labs = [observation("98979-8", 85, "mL/min/{1.73_m2}", low=60), observation("718-7", 13.5, "g/dL")]
    plain = prefetch(conditions=[gbs(onset=days_ago(5))], weights=[weight(70, when=days_ago(1))], labs=labs)
    busy = prefetch(
        conditions=[gbs(onset=days_ago(5))] + [condition(f"I10.{i}") for i in range(39)],
        weights=[weight(70, when=days_ago(1))],
        labs=[observation("98979-8", 50 + i, "mL/min/{1.73_m2}", low=60, when=days_ago(i)) for i in range(100)],
        medications=[medication_request(f"C09AA0{i % 9}") for i in range(60)],
    )
    huge = prefetch(
        conditions=[gbs(onset=days_ago(5))] + [condition(f"I10.{i % 100}") for i in range(1999)],
        weights=[weight(70, when=days_ago(1))],
        labs=[observation("98979-8", 50 + i % 50, "mL/min/{1.73_m2}", low=60, when=days_ago(i % 365)) for i in range(5999)],
        medications=[medication_request(f"C09AA0{i % 9}") for i in range(2000)],
    )
    return {name: json.dumps(hook_request([ivig_order()], prefetch=data)).encode()
            for name, data in (("plain GBS", plain), ("busy record", busy), ("10,000 resources", huge))}


class Client:
    """One keep-alive connection that sends signed hook calls (a token for each, signed ahead)."""

    def __init__(self, port: int):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, body: bytes, signed: str) -> int:
        self.connection.request("POST", SELECT, body=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {signed}"})
        response = self.connection.getresponse()
        response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
        return response.status


def tokens(port: int, count: int) -> deque[str]:
    """One-use tokens naming the public URL and the URL called (a version that builds the audience from the
    request accepts them too)."""
    return deque(token([PUBLIC + SELECT, f"http://127.0.0.1:{port}{SELECT}"]) for _ in range(count))


def throughput(port: int, body: bytes, clients: int, seconds: float, signed: deque[str]) -> float:
    done, failed = [0], [0]
    ends = time.monotonic() + seconds
    lock = threading.Lock()

    def run() -> None:
        client = Client(port)
        while time.monotonic() < ends:
            try:
                status = client.post(body, signed.popleft())
            except IndexError:
                return
            with lock:
                done[0] += status == 200
                failed[0] += status != 200

    threads = [threading.Thread(target=run) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed[0]:
        raise SystemExit(f"{failed[0]} calls were not answered 200 on port {port}")
    return done[0] / (time.perf_counter() - started)


def median_ms(port: int, body: bytes, calls: int) -> float:
    client, signed = Client(port), tokens(port, calls + 5)
    for _ in range(5):
        assert client.post(body, signed.popleft()) == 200
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        status = client.post(body, signed.popleft())
        times.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose service is measured")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0, help="each throughput phase")
    parser.add_argument("--calls", type=int, default=200, help="calls for each median")
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo(args.port, args.workers)
        return
    payloads = bodies()
    with tempfile.TemporaryDirectory() as folder:
        service, service_port = start(args.root.resolve(), Path(folder) / "service", args.workers, extra_env=LIMITS)
        echo, echo_port = start(ROOT, Path(folder) / "echo", args.workers, extra_env=LIMITS,
                                command=[sys.executable, str(Path(__file__).resolve()), "--serve-echo"])
        try:
            print(f"service from {args.root.resolve()}, echo from {ROOT}; {args.workers} workers each")
            for clients in (1, 4, 16):
                rates = {}
                for name, port in (("service", service_port), ("echo", echo_port)):
                    signed = tokens(port, int(3000 * args.seconds))
                    throughput(port, payloads["plain GBS"], clients, 0.5, signed)  # warm-up
                    rates[name] = throughput(port, payloads["plain GBS"], clients, args.seconds, signed)
                print(f"throughput at {clients:2d} clients: service {rates['service']:7.1f}/s, echo {rates['echo']:7.1f}/s, "
                      f"ratio {rates['service'] / rates['echo']:.2f}")
            medians = {name: median_ms(service_port, body, args.calls if name != "10,000 resources" else 20)
                       for name, body in payloads.items()}
            echo_huge = median_ms(echo_port, payloads["10,000 resources"], 20)
            print(f"median plain GBS {medians['plain GBS']:.2f} ms, busy record {medians['busy record']:.2f} ms: "
                  f"ratio busy / plain {medians['busy record'] / medians['plain GBS']:.2f}")
            print(f"10,000 resources in prefetch ({len(payloads['10,000 resources']) / 1e6:.1f} MB): service "
                  f"{medians['10,000 resources']:.0f} ms, echo {echo_huge:.0f} ms: ratio {medians['10,000 resources'] / echo_huge:.2f}")
        finally:
            for process in (service, echo):
                process.terminate()
                process.wait(10)


def serve_echo(port: int, workers: int) -> None:
    from flask import Flask, jsonify, request

    from cds_service.auth import JwtVerifier, require_jwt
    from cds_service.config import Settings
    from cds_service.protocol import load_json
    from cds_service.server import run

    settings = Settings.from_env()
    app = Flask("echo")
    app.before_request(require_jwt(JwtVerifier(settings.auth), settings.public_url))

    @app.get("/cds-services")
    def discovery():  # the start-up probe
        return jsonify({"services": []})

    @app.post("/cds-services/<service_id>")
    def hook(service_id: str):
        load_json(request.get_data(), settings.limits.max_json_depth)  # what every hook endpoint must do
        return jsonify({"cards": []})

    run(app, settings, host="127.0.0.1", port=port, workers=workers)


if __name__ == "__main__":
    main()
