"""Security through HTTP: JWTs on every endpoint, the FHIR server allowlist, and request limits."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cds_service.app import create_app
from cds_service.auth import AuthSettings
from cds_service.config import ConfigurationError, Settings
from tests.conftest import ROOT
from tests.fhir_data import PATIENT_ID, gbs, hook_request, ivig_order, prefetch, weight
from tests.fhir_stub_server import FhirStub
from tests.test_auth import KEYS, public_jwk

ISS = "https://ehr.example.org"
BASE = "http://localhost"  # what Flask's test client calls
SELECT = "/cds-services/ivig-order-select"
REQUEST = hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=[weight(70)]))


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def production(key):
    """The service as deployed: JWT required, one trusted EHR, no FHIR server allowlisted."""
    auth = AuthSettings(trusted_issuers=frozenset({ISS}), jwks={"keys": [public_jwk(key, "ehr-1", "ES384")]})
    return create_app(Settings(knowledge_root=ROOT, auth=auth, max_body_bytes=200_000)).test_client()


def token(key, aud: str, *, kid: str = "ehr-1", iss: str = ISS, **claims) -> str:
    now = int(time.time())
    payload = {"iss": iss, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(payload, key, algorithm="ES384", headers={"kid": kid, "typ": "JWT"})


def auth(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


def test_a_signed_call_is_answered_on_every_endpoint(production, key):
    assert production.get("/cds-services", headers=auth(token(key, BASE + "/cds-services"))).status_code == 200
    response = production.post(SELECT, json=REQUEST, headers=auth(token(key, BASE + SELECT)))
    assert response.status_code == 200 and response.get_json()["cards"]
    card = next(c for c in response.get_json()["cards"] if c.get("suggestions"))
    feedback = {"feedback": [{"card": card["uuid"], "outcome": "accepted", "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                              "outcomeTimestamp": "2026-11-24T10:00:00Z"}]}
    assert production.post(SELECT + "/feedback", json=feedback, headers=auth(token(key, BASE + SELECT + "/feedback"))).status_code == 200


@pytest.mark.parametrize("headers", [
    {},
    auth("not-a-jwt"),
    {"Authorization": "Basic dXNlcjpwYXNz"},
])
def test_unsigned_calls_get_401_without_detail(production, headers):
    response = production.post(SELECT, json=REQUEST, headers=headers)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert response.get_json()["issue"][0]["diagnostics"] == "unauthorized"


def test_wrong_audience_replay_and_unknown_issuer_get_401(production, key):
    assert production.post(SELECT, json=REQUEST, headers=auth(token(key, BASE + "/cds-services/ivig-order-sign"))).status_code == 401
    assert production.post(SELECT, json=REQUEST, headers=auth(token(key, BASE + SELECT, iss="https://other.example"))).status_code == 401
    once = token(key, BASE + SELECT)
    assert production.post(SELECT, json=REQUEST, headers=auth(once)).status_code == 200
    assert production.post(SELECT, json=REQUEST, headers=auth(once)).status_code == 401


def test_cors_preflight_needs_no_jwt(production):
    response = production.options(SELECT, headers={"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST"})
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "*"


def test_development_mode_accepts_the_sandbox_signature():
    app = create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development())).test_client()
    sandbox_key = serialization.load_pem_private_key((KEYS / "sandbox_ecprivkey.pem").read_bytes(), password=None)
    signed = token(sandbox_key, BASE + SELECT, kid="44823f3d-0b01-4a6c-a80e-b9d3e8a7226f", iss="https://sandbox.cds-hooks.org")
    assert app.post(SELECT, json=REQUEST, headers=auth(signed)).status_code == 200


# --- outbound: only allowlisted FHIR servers ever get a request (and the token) -------------------------------------

@pytest.fixture
def fhir() -> Iterator[FhirStub]:
    with FhirStub() as stub:
        yield stub


def test_production_sends_nothing_to_a_fhir_server_off_the_allowlist(production, key, fhir):
    body = hook_request([ivig_order()], fhirServer=fhir.base_url, fhirAuthorization={"access_token": "tok", "token_type": "Bearer"})
    response = production.post(SELECT, json=body, headers=auth(token(key, BASE + SELECT)))
    assert response.status_code == 412 and "allowlist" in response.get_data(as_text=True)
    assert fhir.requests == []


def test_an_allowlisted_server_is_called_and_another_is_not(fhir):
    app = create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(),
                              fhir_servers=("https://fhir.hospital.example/r4",))).test_client()
    body = hook_request([ivig_order()], fhirServer=fhir.base_url)
    assert app.post(SELECT, json=body).status_code == 412
    assert fhir.requests == []


def test_production_refuses_an_http_allowlist_entry():
    with pytest.raises(ConfigurationError, match="https"):
        Settings(knowledge_root=ROOT, fhir_servers=("http://fhir.example/r4",))


def test_settings_from_the_environment(tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": []}))
    settings = Settings.from_env({"IVIG_CDS_TRUSTED_ISSUERS": "https://a.example, https://b.example", "IVIG_CDS_JWKS_FILE": str(jwks),
                                  "IVIG_CDS_FHIR_SERVERS": "https://fhir.example/r4", "IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT)})
    assert settings.mode == "production" and settings.auth.required
    assert settings.auth.trusted_issuers == {"https://a.example", "https://b.example"}
    assert settings.may_call("https://fhir.example/r4") and not settings.may_call("https://fhir.example/r4x")
    assert not settings.may_call("http://fhir.example/r4")
    dev = Settings.from_env({"IVIG_CDS_MODE": "development"})
    assert not dev.auth.required and "https://sandbox.cds-hooks.org" in dev.auth.trusted_issuers
    with pytest.raises(ConfigurationError):
        Settings.from_env({"IVIG_CDS_MODE": "staging"})
    with pytest.raises(ConfigurationError):
        Settings.from_env({"IVIG_CDS_FHIR_TIMEOUT": "soon"})


# --- limits ---------------------------------------------------------------------------------------------------------

def test_a_body_over_the_limit_gets_413(production, key):
    padded = {**REQUEST, "extension": {"org.example.padding": "x" * 300_000}}
    response = production.post(SELECT, json=padded, headers=auth(token(key, BASE + SELECT)))
    assert response.status_code == 413 and response.get_json()["resourceType"] == "OperationOutcome"


def test_deep_nesting_is_a_400_not_a_500(client):
    deep = "[" * 5000 + "]" * 5000
    body = json.dumps(REQUEST)[:-1] + ', "extension": {"org.example.deep": ' + deep + "}}"
    response = client.post(SELECT, data=body, content_type="application/json")
    assert response.status_code == 400


def test_logs_carry_no_patient_identifier_or_token(client, caplog, fhir):
    body = hook_request([ivig_order()], fhirServer=fhir.base_url, fhirAuthorization={"access_token": "tok-secret", "token_type": "Bearer"})
    with caplog.at_level("DEBUG"):
        client.post(SELECT, json=body)
    assert caplog.records and PATIENT_ID not in caplog.text and "tok-secret" not in caplog.text
