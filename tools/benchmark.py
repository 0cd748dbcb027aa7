"""Time and memory of hook calls, measured in one run, printed as figures (not a test).

    python tools/benchmark.py [--calls N] [--fallback-calls N] [--no-fallback]

Calls go through Flask's test client with the production settings, so they include JWT
verification (tokens are signed before the clock starts: signing is the EHR's cost), request
parsing, the engine and JSON rendering, but no network. Figures depend on the machine; compare
ratios from one run.

The FHIR fallback part (needs node, see tests/medplum.py) loads one patient into the real test FHIR
server on loopback and compares, interleaved round by round: each prefetch query alone on a warm
keep-alive connection, the hook call with full prefetch, and the same call without prefetch (the
service fetches every key). It prints no-prefetch / (slowest single query + with-prefetch call).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds_service.app import create_app  # noqa: E402
from cds_service.auth import AuthSettings  # noqa: E402
from cds_service.config import Settings  # noqa: E402
from tests.fhir_data import (  # noqa: E402
    PATIENT_ID,
    condition,
    corticosteroid,
    days_ago,
    gbs,
    hook_request,
    ivig_order,
    medication_request,
    observation,
    patient,
    prefetch,
    procedure,
    weight,
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


def signer() -> tuple[AuthSettings, Callable[[str, int], list[dict]]]:
    """Settings that trust a fresh key, and a function signing `count` one-use JWTs for a path with it."""
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "bench", "alg": "ES384"}

    def tokens(path: str, count: int) -> list[dict]:
        now = int(time.time())
        return [{"Authorization": "Bearer " + jwt.encode(
            {"iss": ISSUER, "aud": PUBLIC_URL + path, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
            key, algorithm="ES384", headers={"kid": "bench"})} for _ in range(count)]

    return AuthSettings(trusted_issuers=frozenset({ISSUER}), jwks={"keys": [jwk]}), tokens


def fallback(calls: int) -> None:
    """The cost of fetching the patient's data from a FHIR server instead of receiving it as prefetch."""
    import requests

    from tests.medplum import MedplumUnavailable, running_fhir_server

    token = "bench-fhir-token"
    data: dict[str, Any] = {"conditions": [gbs(onset=days_ago(5))],
            "weights": [weight(60, when=days_ago(30)), weight(70, when=days_ago(1))],
            "labs": [observation("98979-8", 85, "mL/min/{1.73_m2}", low=60), observation("718-7", 13.5, "g/dL"),
                     observation("2160-0", 0.9, "mg/dL", low=0.6, high=1.2)],
            "medications": [corticosteroid("H02AB04", "methylprednisolone")],
            "procedures": [procedure("20720000", performed=days_ago(2))]}
    try:
        server = running_fhir_server(require_token=token)
        fhir = server.__enter__()
    except MedplumUnavailable as exc:
        print(f"FHIR fallback: not measured ({str(exc).splitlines()[0]})")
        return
    try:
        from tests.fhir_server_fixtures import load
        load(fhir, [patient(), *(r for group in data.values() for r in group)])
        auth, tokens = signer()
        app = create_app(Settings(knowledge_root=ROOT, mode="development", auth=auth, fhir_servers=(fhir.base,),
                                  public_url=PUBLIC_URL))
        client = app.test_client()
        path = "/cds-services/ivig-order-select"
        with_prefetch = hook_request([ivig_order()], prefetch=prefetch(**data))
        without = hook_request([ivig_order()], fhirServer=fhir.base,
                               fhirAuthorization={"access_token": token, "token_type": "Bearer", "subject": "bench"})
        from cds_service import search_plan

        queries = {key: template.replace("{{context.patientId}}", PATIENT_ID)
                   for key, template in app.extensions["ivig_cds"].templates.items()}
        sent = {"+".join(search.keys): search.url for search in search_plan.plan(queries)}  # what the call sends
        queries.update({name: url for name, url in sent.items() if name not in queries})
        session = requests.Session()  # the best case for one query: a warm keep-alive connection
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
        times: dict[str, list[float]] = {name: [] for name in [*queries, "with prefetch", "without prefetch"]}
        answers = set()
        signed = tokens(path, 2 * (calls + 10))
        for round_ in range(calls + 10):  # interleaved, so a slow moment of the machine hits every figure alike
            for key, query in queries.items():
                t = time.perf_counter()
                answer = session.get(f"{fhir.base}/{query}", headers=headers, timeout=10)
                elapsed = time.perf_counter() - t
                assert answer.status_code == 200, (key, answer.status_code)
                if round_ >= 10:
                    times[key].append(elapsed * 1000)
            for name, body in (("with prefetch", with_prefetch), ("without prefetch", without)):
                t = time.perf_counter()
                response = client.post(path, json=body, headers=signed.pop())
                elapsed = time.perf_counter() - t
                assert response.status_code == 200, response.get_json()
                answers.add(repr([(c["summary"], c.get("detail")) for c in response.get_json()["cards"]]))
                if round_ >= 10:
                    times[name].append(elapsed * 1000)
        assert len(answers) == 1, "the call without prefetch gave other cards than with prefetch"
        medians = {name: statistics.median(values) for name, values in times.items()}
        slowest = max(sent, key=lambda key: medians[key])
        slowest_key = max(app.extensions["ivig_cds"].templates, key=lambda key: medians[key])
        print(f"FHIR fallback against the test FHIR server ({len(sent)} searches for "
              f"{len(app.extensions['ivig_cds'].templates)} keys, {calls} rounds, medians):")
        print("  single queries: " + ", ".join(f"{key} {medians[key]:.2f}" for key in queries) + " ms")
        print(f"  slowest search the call sends ({slowest}) {medians[slowest]:.2f} ms; slowest one key's own query "
              f"({slowest_key}) {medians[slowest_key]:.2f} ms")
        print(f"  hook call with prefetch {medians['with prefetch']:.2f} ms; without prefetch "
              f"{medians['without prefetch']:.2f} ms")
        serial = sum(medians[name] for name in sent)
        best = (serial + medians['with prefetch']) / (medians[slowest] + medians['with prefetch'])
        print(f"  sum of the searches the call sends {serial:.2f} ms: the test server (node) answers one request at a "
              f"time, so no client can do better than ratio {best:.2f} here; "
              f"without prefetch / (sum + with prefetch): {medians['without prefetch'] / (serial + medians['with prefetch']):.2f}")
        print(f"ratio without prefetch / (slowest single query + with prefetch): "
              f"{medians['without prefetch'] / (medians[slowest] + medians['with prefetch']):.2f} "
              f"(against the slowest one key's own query: "
              f"{medians['without prefetch'] / (medians[slowest_key] + medians['with prefetch']):.2f})")
    finally:
        server.__exit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--fallback-calls", type=int, default=100, help="rounds of the FHIR fallback comparison")
    parser.add_argument("--no-fallback", action="store_true", help="skip the FHIR fallback part (needs node)")
    parser.add_argument("--fallback-only", action="store_true", help="only the FHIR fallback part")
    args = parser.parse_args()
    if not args.no_fallback:
        fallback(args.fallback_calls)
    if args.fallback_only:
        return
    auth, tokens = signer()
    started = time.perf_counter()
    app = create_app(Settings(knowledge_root=ROOT, auth=auth, public_url=PUBLIC_URL))
    print(f"start-up (load, validate, index definitions): {(time.perf_counter() - started) * 1000:.0f} ms")
    client = app.test_client()

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
