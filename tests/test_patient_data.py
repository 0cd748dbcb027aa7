"""Where the patient's data comes from (prefetch, else the EHR's FHIR server) and what happens when neither gives it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cds_service import search_plan
from cds_service.app import create_app
from cds_service.auth import AuthSettings
from cds_service.config import Settings
from tests.conftest import ROOT, topics
from tests.fhir_data import PATIENT_ID, days_ago, gbs, hook_request, ivig_order, prefetch, weight
from tests.fhir_stub_server import FhirStub, operation_outcome, searchset

TOKEN = "secret-token-123"
DATA = prefetch(conditions=[gbs(onset=days_ago(4))], weights=[weight(70, when=days_ago(1))])


@pytest.fixture(scope="module")
def stub() -> Iterator[FhirStub]:
    with FhirStub() as server:
        yield server


@pytest.fixture(scope="module")
def app(stub: FhirStub):
    """Development mode with the loopback stub allowlisted (without an allowlist, loopback gets no request)."""
    return create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(),
                               fhir_timeout=2.0, fhir_servers=(stub.base_url,)))


def searches(app) -> list[search_plan.Search]:
    """The searches the service sends for PATIENT_ID (Observation searches by code merged into one)."""
    templates = app.extensions["ivig_cds"].templates
    return search_plan.plan({key: t.replace("{{context.patientId}}", PATIENT_ID) for key, t in templates.items()})


@pytest.fixture
def fhir(app, stub: FhirStub) -> FhirStub:
    """A FHIR server that holds exactly the DATA above, at the queries the service sends (each key's query alone
    too, for calls that fetch only some keys)."""
    stub.routes.clear()
    stub.requests.clear()
    for search in searches(app):
        for key, query in search.parts.items():
            stub.add(query, DATA[key])
        if len(search.keys) > 1:
            stub.add(search.url, searchset([e["resource"] for key in search.keys for e in DATA[key].get("entry", [])]))
    return stub


def with_server(stub: FhirStub, **body) -> dict:
    return hook_request([ivig_order()], fhirServer=stub.base_url,
                        fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                           "scope": "patient/*.read", "subject": "cds-service"}, **body)


def essence(cards: list[dict]) -> list[tuple]:
    """What a clinician sees, without the per-response uuids."""
    return [(c["summary"], c["indicator"], c["detail"], [s["label"] for s in c.get("suggestions", [])]) for c in cards]


def test_without_prefetch_the_service_fetches_and_gives_the_same_cards(cds, fhir, app):
    from_prefetch = cds(hook_request([ivig_order()], prefetch=DATA))
    from_server = cds(with_server(fhir))
    assert essence(from_server) == essence(from_prefetch)
    assert topics(from_server)["GBS-1"]["suggestions"]
    assert sorted(r.target for r in fhir.requests) == sorted(search.url for search in searches(app))
    assert len(fhir.requests) < len(DATA)  # the weight and the labs in one Observation search
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in fhir.requests)


def test_only_absent_keys_are_fetched(cds, fhir):
    partial = {k: v for k, v in DATA.items() if k != "weight"}
    cds(with_server(fhir, prefetch=partial))
    assert [r.target.split("?")[0] for r in fhir.requests] == ["Observation"]


def test_null_means_no_data_and_is_not_fetched(cds, fhir):
    cards = topics(cds(with_server(fhir, prefetch={**DATA, "weight": None})))
    assert fhir.requests == []
    assert "SAFE-weight" in cards and "suggestions" not in cards["GBS-1"]


def test_an_operation_outcome_in_prefetch_is_fetched_again(cds, fhir):
    cards = topics(cds(with_server(fhir, prefetch={**DATA, "conditions": operation_outcome("exception", "timeout")})))
    assert "GBS-1" in cards
    assert [r.target.split("?")[0] for r in fhir.requests] == ["Condition"]


def test_no_prefetch_and_no_fhir_server_is_412_naming_the_keys(client):
    response = client.post("/cds-services/ivig-order-select", json=hook_request([ivig_order()]))
    assert response.status_code == 412
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    text = " ".join(i["diagnostics"] for i in outcome["issue"])
    assert all(key in text for key in DATA)


@pytest.mark.parametrize("fault", [dict(status=500, body=operation_outcome()), dict(status=401, body=operation_outcome("login")),
                                   dict(raw=b"<html>not json</html>")])
def test_a_failing_fhir_server_gives_412_not_500_and_never_leaks_the_token(client, fhir, app, fault):
    conditions = app.extensions["ivig_cds"].templates["conditions"].replace("{{context.patientId}}", PATIENT_ID)
    fhir.add(conditions, **fault)
    response = client.post("/cds-services/ivig-order-select", json=with_server(fhir))
    assert response.status_code == 412
    assert "conditions" in response.get_data(as_text=True) and TOKEN not in response.get_data(as_text=True)
    assert conditions in [r.target for r in fhir.requests]  # the server was asked, and failed
