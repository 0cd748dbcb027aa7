"""Where the patient's data comes from (prefetch, else the EHR's FHIR server) and what happens when neither gives it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import topics
from tests.fhir_data import PATIENT_ID, days_ago, gbs, hook_request, ivig_order, prefetch, weight
from tests.fhir_stub_server import FhirStub, operation_outcome

TOKEN = "secret-token-123"
DATA = prefetch(conditions=[gbs(onset=days_ago(4))], weights=[weight(70, when=days_ago(1))])


@pytest.fixture
def fhir(app) -> Iterator[FhirStub]:
    """A FHIR server that holds exactly the DATA above, at the queries our discovery document announces."""
    templates = app.extensions["ivig_cds"].templates
    with FhirStub() as stub:
        for key, template in templates.items():
            stub.add(template.replace("{{context.patientId}}", PATIENT_ID), DATA[key])
        yield stub


def with_server(stub: FhirStub, **body) -> dict:
    return hook_request([ivig_order()], fhirServer=stub.base_url,
                        fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                           "scope": "patient/*.read", "subject": "cds-service"}, **body)


def essence(cards: list[dict]) -> list[tuple]:
    """What a clinician sees, without the per-response uuids."""
    return [(c["summary"], c["indicator"], c["detail"], [s["label"] for s in c.get("suggestions", [])]) for c in cards]


def test_without_prefetch_the_service_fetches_and_gives_the_same_cards(cds, fhir):
    from_prefetch = cds(hook_request([ivig_order()], prefetch=DATA))
    from_server = cds(with_server(fhir))
    assert essence(from_server) == essence(from_prefetch)
    assert topics(from_server)["GBS-1"]["suggestions"]
    assert len(fhir.requests) == len(DATA)
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
