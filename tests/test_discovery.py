"""GET /cds-services, CORS, and the feedback endpoint."""

from __future__ import annotations

import re
from importlib.metadata import version
from urllib.parse import parse_qsl

import pytest

from cds_service.app import create_app
from cds_service.config import ConfigurationError, Settings
from tests.conftest import ROOT
from tests.fhir_data import gbs, hook_request, ivig_order, prefetch, weight

ALLOWED_PARAMS = {"patient", "code", "status", "_sort", "_count"}


def test_two_services_one_per_hook(client):
    services = client.get("/cds-services").get_json()["services"]
    assert {(s["id"], s["hook"]) for s in services} == {("ivig-order-select", "order-select"), ("ivig-order-sign", "order-sign")}
    for service in services:
        assert service["description"] and service["title"]
        assert set(service["prefetch"]) == {"patient", "conditions", "weight", "labs", "medications", "administrations", "procedures",
                                            "serviceRequests"}


def test_prefetch_templates_use_only_2_0_tokens_and_the_restricted_query_syntax(client):
    for service in client.get("/cds-services").get_json()["services"]:
        for template in service["prefetch"].values():
            assert set(re.findall(r"\{\{([^}]*)\}\}", template)) == {"context.patientId"}
            resource, _, query = template.partition("?")
            assert re.fullmatch(r"[A-Z][A-Za-z]+(/\{\{context\.patientId\}\})?", resource)
            params = dict(parse_qsl(query))
            assert set(params) <= ALLOWED_PARAMS
            if "_sort" in params:
                assert params["_sort"] in ("date", "-date")


def test_weight_template_asks_for_the_latest_body_weight_by_loinc(client):
    template = client.get("/cds-services").get_json()["services"][0]["prefetch"]["weight"]
    assert "http://loinc.org|29463-7" in template and "_sort=-date" in template and "_count=1" in template


def test_cors_on_every_endpoint_including_preflight(client):
    for method, path in [("get", "/cds-services"), ("options", "/cds-services/ivig-order-select"),
                         ("options", "/cds-services/ivig-order-sign/feedback"), ("post", "/cds-services/nope")]:
        response = getattr(client, method)(path, headers={"Origin": "https://sandbox.cds-hooks.org",
                                                          "Access-Control-Request-Method": "POST"})
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
        assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_feedback_is_accepted(client, cds):
    card = cds(hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=[weight(70)])))[0]
    body = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                          "overrideReason": {"reason": {"code": "risk-benefit-ratio", "system": "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"}},
                          "outcomeTimestamp": "2026-11-24T10:05:31Z"}]}
    assert client.post("/cds-services/ivig-order-select/feedback", json=body).status_code == 200
    assert client.post("/cds-services/ivig-order-select/feedback", json={"feedback": "yes"}).status_code == 400
    assert client.post("/cds-services/nope/feedback", json=body).status_code == 404
    unknown = {"feedback": [{**body["feedback"][0], "card": "9368d37b-283f-44a0-93ea-547cebab93ed"}]}
    assert client.post("/cds-services/ivig-order-select/feedback", json=unknown).status_code == 400


def test_unknown_paths_and_methods_answer_with_an_operation_outcome(client):
    for response in (client.get("/nothing-here"), client.delete("/cds-services")):
        assert response.status_code in (404, 405)
        assert response.get_json()["resourceType"] == "OperationOutcome"


def test_discovery_answers_without_a_jwt_in_production_and_carries_the_package_version():
    """EHRs read discovery when they register a service, before they sign anything; it holds no patient data."""
    production = create_app(Settings(knowledge_root=ROOT, public_url="https://cds.example.org")).test_client()
    response = production.get("/cds-services")
    assert response.status_code == 200
    assert {s["version"] for s in response.get_json()["services"]} == {version("ivig-cds")}
    assert production.post("/cds-services/ivig-order-select", json=hook_request([ivig_order()])).status_code == 401

    closed = create_app(Settings(knowledge_root=ROOT, public_url="https://cds.example.org", discovery_requires_jwt=True))
    assert closed.test_client().get("/cds-services").status_code == 401


def test_discovery_requires_jwt_is_read_from_the_environment_and_refuses_a_non_boolean():
    assert Settings.from_env({"IVIG_CDS_DISCOVERY_REQUIRES_JWT": "yes"}).discovery_requires_jwt is True
    assert Settings.from_env({}).discovery_requires_jwt is False
    with pytest.raises(ConfigurationError, match="DISCOVERY_REQUIRES_JWT"):
        Settings.from_env({"IVIG_CDS_DISCOVERY_REQUIRES_JWT": "maybe"})
