"""Without prefetch the service reads the patient's data from the EHR's FHIR server: here a real FHIR R4 server
(Medplum's FhirRouter over an in-memory repository, tests/fhir_server) that requires a bearer token."""

from __future__ import annotations

import statistics
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from cds_service.app import create_app
from cds_service.auth import AuthSettings
from cds_service.config import Settings
from tests.conftest import ROOT, topics
from tests.fhir_data import (
    ATC,
    PATIENT_ID,
    administration,
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
    suggested_courses,
    weight,
)
from tests.fhir_server_fixtures import closed_port_base, essence, failed_keys, load, log_targets, planned
from tests.medplum import FhirServer

FHIR_TOKEN = "medplum-test-token-8d1f"  # the server requires it (fhir_server reads this constant)
FHIR_TIMEOUT = 1.0  # the service's budget for its FHIR queries (all pages of one query included)
SELECT = "/cds-services/ivig-order-select"
KEYS = ("patient", "conditions", "weight", "labs", "medications", "administrations", "procedures", "serviceRequests")

fault_times: dict[str, float] = {}  # fault -> seconds the hook call took


@pytest.fixture(scope="module", autouse=True)
def report_worst_fault_time():
    yield
    if fault_times:
        worst = max(fault_times, key=fault_times.get)
        print(f"\nworst faulting call: {worst} {fault_times[worst]:.3f}s (budget {FHIR_TIMEOUT + 1.0:g}s)")


@pytest.fixture(scope="module")
def app(fhir_server: FhirServer):
    """Development mode with the loopback FHIR server allowlisted (without an allowlist it gets no request)."""
    return create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(),
                               fhir_timeout=FHIR_TIMEOUT, fhir_servers=(fhir_server.base,)))


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def templates(app) -> dict[str, str]:
    assert tuple(app.extensions["ivig_cds"].templates) == KEYS
    return app.extensions["ivig_cds"].templates


# ---- the patient --------------------------------------------------------------------------------

def patient_data() -> dict[str, list[dict]]:
    """GBS (onset 20 days ago) with an IVIG course 12 days ago and plasma exchange 2 days ago, methylprednisolone, two
    weights, kidney and blood labs. The older weight comes first, so only the server's _sort=-date makes the 80 kg one
    the answer to `_count=1`."""
    return {
        "conditions": [gbs(onset=days_ago(20))],
        "administrations": [administration(when=days_ago(12))],
        "weights": [weight(60, when=days_ago(30)), weight(80, when=days_ago(1))],
        "labs": [observation("98979-8", 85, "mL/min/{1.73_m2}", when=days_ago(1), display="eGFR (CKD-EPI 2021)"),
                 observation("2160-0", 0.9, "mg/dL", when=days_ago(1), low=0.6, high=1.2, display="Creatinine"),
                 observation("718-7", 13.5, "g/dL", when=days_ago(1), low=12, high=16, display="Haemoglobin")],
        "medications": [corticosteroid("H02AB04", "methylprednisolone")],
        "procedures": [procedure("20720000", performed=days_ago(2))],
    }


def as_prefetch(data: dict[str, list[dict]]) -> dict:
    return prefetch(**data)


def resources_of(data: dict[str, list[dict]]) -> list[dict]:
    return [patient(), *(r for group in data.values() for r in group)]


def with_server(base: str, token: str = FHIR_TOKEN, **body) -> dict:
    return hook_request([ivig_order()], fhirServer=base,
                        fhirAuthorization={"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                           "scope": "patient/*.read", "subject": "cds-service"}, **body)


def post(client, body: dict) -> list[dict]:
    response = client.post(SELECT, json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["cards"]


def check_expected_cards(cards: list[dict]) -> None:
    by_topic = topics(cards)
    # GBS-6: the course given this episode (administrations); GBS-3: plasma exchange (procedures); GBS-4: medications
    assert {"GBS-3", "GBS-4", "GBS-6"} <= set(by_topic), sorted(by_topic)
    assert (32, 5) in suggested_courses(by_topic["GBS-6"])  # 0.4 g/kg/day x 80 kg (the latest weight), 5 days


# ---- same cards either way ------------------------------------------------------------------------

def test_without_prefetch_the_server_gives_the_same_cards_with_the_token_on_every_request(client, fhir: FhirServer, templates):
    data = patient_data()
    load(fhir, resources_of(data))
    from_prefetch = post(client, hook_request([ivig_order()], prefetch=as_prefetch(data)))
    before = len(fhir.request_log())
    from_server = post(client, with_server(fhir.base))
    log = fhir.request_log()[before:]

    assert essence(from_server) == essence(from_prefetch)
    check_expected_cards(from_server)
    assert sorted(log_targets(log)) == sorted(planned(templates))  # one query per key, weight and labs in one
    assert len(log) == len(KEYS) - 1
    assert all(e["method"] == "GET" and e["authorization"] == f"Bearer {FHIR_TOKEN}" for e in log), log


def test_a_partial_prefetch_fetches_only_the_absent_keys(client, fhir: FhirServer, templates):
    data = patient_data()
    load(fhir, resources_of(data))
    full = as_prefetch(data)
    present = ("patient", "conditions", "weight", "medications")
    absent = [key for key in KEYS if key not in present]
    before = len(fhir.request_log())
    cards = post(client, with_server(fhir.base, prefetch={key: full[key] for key in present}))
    log = fhir.request_log()[before:]

    assert sorted(log_targets(log)) == sorted(planned(templates, absent))
    assert essence(cards) == essence(post(client, hook_request([ivig_order()], prefetch=full)))
    check_expected_cards(cards)


def test_searchset_pages_are_all_read_except_for_a_count_limited_query(client, fhir: FhirServer, templates):
    fhir.control(defaultCount=2)  # searches without _count come back 2 entries a page
    others = [condition(code, display=code) for code in ("I10", "E11.9", "J45.909", "K21.9", "M54.5", "E78.5", "F41.1", "H52.4")]
    drugs = [medication_request(code, ATC) for code in ("C09AA05", "A10BA02", "C10AA05", "N02BE01", "A02BC01", "C07AB02", "C08CA01")]
    data = patient_data()
    data["conditions"] = [*others, *data["conditions"]]  # GBS is the 9th Condition: page 5
    data["medications"] = [*drugs, *data["medications"]]  # methylprednisolone is the 8th: page 4
    data["weights"] = [weight(70, when=days_ago(60)), *data["weights"]]  # 3 weights: _count=1 has a next link
    load(fhir, resources_of(data))

    first_page = fhir.get(f"Condition?patient={PATIENT_ID}").json()
    assert data["conditions"][-1]["id"] not in [e["resource"]["id"] for e in first_page["entry"]]
    assert any(link["relation"] == "next" for link in first_page["link"])
    observation_query = planned(templates, ["weight", "labs"])[0]  # one search: the newest 1 + 100, split by code
    weight_first_page = fhir.get(templates["weight"].replace("{{context.patientId}}", PATIENT_ID)).json()
    assert any(link["relation"] == "next" for link in weight_first_page["link"])  # there is a page 2 not to read

    before = len(fhir.request_log())
    cards = post(client, with_server(fhir.base))
    log = fhir.request_log()[before:]
    targets = log_targets(log)

    check_expected_cards(cards)  # GBS-6 (GBS on page 5), GBS-4 (methylprednisolone on page 4), 80 kg
    assert essence(cards) == essence(post(client, hook_request([ivig_order()], prefetch=as_prefetch(data))))

    def offsets(kind: str) -> list[int]:
        return sorted(int(parse_qs(urlsplit(t).query).get("_offset", ["0"])[0]) for t in targets if t.startswith(kind + "?"))

    assert offsets("Condition") == [0, 2, 4, 6, 8]
    assert offsets("MedicationRequest") == [0, 2, 4, 6]
    assert [t for t in targets if t.startswith("Observation?")] == [observation_query]
    assert offsets("Observation") == [0]  # weight (_count=1) and labs (_count=100) together: first page only
    assert all(e["authorization"] == f"Bearer {FHIR_TOKEN}" for e in log)


# ---- faults: a defined 412, never a 500, within the time budget --------------------------------------

FAULTS = {
    # id: (server knobs, token the request sends, base override, prefetch keys that must be named)
    "server-down": ({}, FHIR_TOKEN, "closed", set(KEYS)),
    "slow-observation": ({"delayMs": int(FHIR_TIMEOUT * 1000) + 1500, "paths": ["Observation"]}, FHIR_TOKEN, None, {"weight", "labs"}),
    "401-wrong-token": ({}, "wrong-token-0000", None, set(KEYS)),
    "404-on-search": ({"status": 404, "paths": ["Condition"]}, FHIR_TOKEN, None, {"conditions"}),
    "500": ({"status": 500, "paths": ["MedicationRequest"]}, FHIR_TOKEN, None, {"medications"}),
    "malformed-json": ({"malformed": True, "paths": ["Procedure"]}, FHIR_TOKEN, None, {"procedures"}),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_faulting_server_gives_412_naming_the_failed_keys_within_the_budget(client, fhir: FhirServer, fault):
    knobs, token, base, expected = FAULTS[fault]
    load(fhir, resources_of(patient_data()))  # the other keys have data and are answered
    if knobs:
        fhir.control(**knobs)
    started = time.monotonic()
    response = client.post(SELECT, json=with_server(closed_port_base() if base == "closed" else fhir.base, token=token))
    elapsed = fault_times[fault] = time.monotonic() - started
    print(f"\n{fault}: HTTP {response.status_code} in {elapsed:.3f}s")

    assert response.status_code == 412, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert failed_keys(outcome) == expected, outcome
    text = response.get_data(as_text=True)
    assert FHIR_TOKEN not in text and token not in text
    assert elapsed < FHIR_TIMEOUT + 1.0
    if fault == "slow-observation":
        assert elapsed >= FHIR_TIMEOUT * 0.9  # it did wait for the server, up to the budget
        assert {i["code"] for i in outcome["issue"]} == {"timeout"}
    if base != "closed":
        assert fhir.request_log(), "the server was not asked"
    if fault == "401-wrong-token":
        assert {e["authorization"] for e in fhir.request_log() if e["method"] == "GET"} == {f"Bearer {token}"}


# ---- cost of the fallback -------------------------------------------------------------------------

def test_median_time_with_prefetch_and_with_the_server(client, fhir: FhirServer):
    data = patient_data()
    load(fhir, resources_of(data))
    with_prefetch = hook_request([ivig_order()], prefetch=as_prefetch(data))
    from_server = with_server(fhir.base)

    def timed(body: dict) -> tuple[float, list]:
        started = time.perf_counter()
        cards = post(client, body)
        return time.perf_counter() - started, essence(cards)

    post(client, with_prefetch), post(client, from_server)  # warm-up
    runs = {"prefetch": [], "server": []}
    answers = set()
    for _ in range(20):
        for name, body in (("prefetch", with_prefetch), ("server", from_server)):
            seconds, cards = timed(body)
            runs[name].append(seconds)
            answers.add(repr(cards))
    median = {name: statistics.median(times) for name, times in runs.items()}
    print(f"\nmedian hook call: full prefetch {median['prefetch'] * 1000:.1f} ms, "
          f"no prefetch (FHIR server) {median['server'] * 1000:.1f} ms, ratio {median['server'] / median['prefetch']:.2f}")
    assert len(answers) == 1  # both paths, every time: the same cards
    assert median["server"] < FHIR_TIMEOUT
