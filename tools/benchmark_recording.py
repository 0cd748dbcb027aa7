"""What recording the returned cards adds to a hook call, measured in one run (not a test).

    python tools/benchmark_recording.py [--calls N] [--store-url URL]

The same app answers the same card-producing call with recording on and off (its recorder detached), in
alternating blocks so that drift of the machine falls on both alike; the figures are per call, through
Flask's test client (no network). The default store is a fresh SQLite file in the temp dir; pass a
PostgreSQL URL to measure that instead (the tables are created in its default schema).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds_service.app import create_app
from cds_service.auth import AuthSettings
from cds_service.config import Settings
from tests.fhir_data import days_ago, gbs, hook_request, ivig_order, prefetch, weight

BLOCK = 50


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000, help="calls with recording on, and as many with it off")
    parser.add_argument("--store-url", help="default: a new SQLite file in the temp dir")
    args = parser.parse_args()
    url = args.store_url or f"sqlite:///{tempfile.mkdtemp(prefix='ivig-cds-bench-')}/store.sqlite3"
    app = create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(), store_url=url))
    service, client = app.extensions["ivig_cds"], app.test_client()
    store, recorder = service.store, service.recorder
    body = hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs(onset=days_ago(5))], weights=[weight(70, when=days_ago(1))]))
    cards = client.post("/cds-services/ivig-order-select", json=body).get_json()["cards"]
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(100):  # warm both paths
        client.post("/cds-services/ivig-order-select", json=body)
    for block in range(2 * args.calls // BLOCK):
        recording = block % 2 == 0
        service.recorder = recorder if recording else None
        for _ in range(BLOCK):
            start = time.perf_counter()
            response = client.post("/cds-services/ivig-order-select", json=body)
            times[recording].append(time.perf_counter() - start)
            assert response.status_code == 200
    service.recorder = recorder
    recorder.flush()
    inserts: list[float] = []
    for _ in range(args.calls):
        start = time.perf_counter()
        store.record_cards("ivig-order-select", "order-select", [dict(c, uuid=f"{c['uuid']}-{len(inserts)}") for c in cards])
        inserts.append(time.perf_counter() - start)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"store: {store.kind}; {len(cards)} cards per call; {args.calls} calls each way")
    print(f"hook call, recording off: median {off * 1e3:.3f} ms, mean {statistics.fmean(times[False]) * 1e3:.3f} ms")
    print(f"hook call, recording on:  median {on * 1e3:.3f} ms, mean {statistics.fmean(times[True]) * 1e3:.3f} ms")
    print(f"added per call: median {(on - off) * 1e3:.3f} ms (on/off = {on / off:.3f})")
    print(f"record_cards alone: median {statistics.median(inserts) * 1e3:.3f} ms, "
          f"95th percentile {statistics.quantiles(inserts, n=20)[-1] * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
