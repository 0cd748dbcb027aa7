"""Time and memory of hook calls, measured in one run, printed as figures (not a test).

    python tools/benchmark.py [--calls N]

Calls go through Flask's test client with the production settings, so they include JWT
verification (tokens are signed before the clock starts: signing is the EHR's cost), request
parsing, the engine and JSON rendering, but no network. Figures depend on the machine; compare
ratios from one run.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds_service.app import create_app  # noqa: E402
from cds_service.auth import AuthSettings  # noqa: E402
from cds_service.config import Settings  # noqa: E402
from tests.fhir_data import (  # noqa: E402
    condition, days_ago, gbs, hook_request, ivig_order, medication_request, observation, prefetch, weight,
)


ISSUER = "https://ehr.example.org"
PUBLIC_URL = "https://cds.example.org"


def scenarios() -> dict[str, dict]:
    gbs_patient = prefetch(conditions=[gbs(onset=days_ago(5))], weights=[weight(70, when=days_ago(1))],
                           labs=[observation("98979-8", 85, "mL/min/{1.73_m2}", low=60), observation("718-7", 13.5, "g/dL")])
    busy = prefetch(
        conditions=[gbs(onset=days_ago(5))] + [condition(f"I10.{i}") for i in range(40)] + [condition("N18.4")],
        weights=[weight(70 + i / 10, when=days_ago(i)) for i in range(1, 30)],
        labs=[observation("98979-8", 50 + i, "mL/min/{1.73_m2}", low=60, when=days_ago(i)) for i in range(100)],
        medications=[medication_request("H02AB04")] + [medication_request(f"C09AA0{i % 9}") for i in range(60)],
    )
    return {
        "GBS, 70 kg, order-select": hook_request([ivig_order()], prefetch=gbs_patient),
        "GBS, draft departs, order-sign": hook_request([ivig_order(daily_g=42, days=5)], hook="order-sign", prefetch=gbs_patient),
        "GBS, busy record (40 diagnoses, 100 labs, 60 meds)": hook_request([ivig_order()], prefetch=busy),
        "unrelated order": hook_request([medication_request("H02AB04", status="draft", id="mp")], prefetch=gbs_patient),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "bench", "alg": "ES384"}
    auth = AuthSettings(trusted_issuers=frozenset({ISSUER}), jwks={"keys": [jwk]})
    started = time.perf_counter()
    app = create_app(Settings(knowledge_root=ROOT, auth=auth, public_url=PUBLIC_URL))
    print(f"start-up (load, validate, index definitions): {(time.perf_counter() - started) * 1000:.0f} ms")
    client = app.test_client()

    def tokens(path: str, count: int) -> list[dict]:
        now = int(time.time())
        return [{"Authorization": "Bearer " + jwt.encode(
            {"iss": ISSUER, "aud": PUBLIC_URL + path, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
            key, algorithm="ES384", headers={"kid": "bench"})} for _ in range(count)]

    medians = {}
    for name, body in scenarios().items():
        path = f"/cds-services/ivig-{body['hook']}"
        headers = tokens(path, args.calls + 20)
        for header in headers[:20]:  # warm up
            client.post(path, json=body, headers=header)
        times = []
        for header in headers[20:]:
            t = time.perf_counter()
            response = client.post(path, json=body, headers=header)
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200
        medians[name] = statistics.median(times)
        p95 = statistics.quantiles(times, n=20)[-1]
        print(f"{name:55s} median {medians[name]:6.2f} ms   p95 {p95:6.2f} ms   cards {len(response.get_json()['cards'])}")
    base = medians["GBS, 70 kg, order-select"]
    print(f"ratio busy record / plain GBS: {medians['GBS, busy record (40 diagnoses, 100 labs, 60 meds)'] / base:.2f}")
    print(f"ratio unrelated order / plain GBS: {medians['unrelated order'] / base:.2f}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
