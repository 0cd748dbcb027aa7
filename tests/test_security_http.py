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
PUBLIC = "https://cds.example.org"  # the public URL the production service is configured with: tokens name it
SELECT = "/cds-services/ivig-order-select"
REQUEST = hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=[weight(70)]))


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def production(key):
    """The service as deployed: JWT required, one trusted EHR, no FHIR server allowlisted."""
    auth = AuthSettings(trusted_issuers=frozenset({ISS}), jwks={"keys": [public_jwk(key, "ehr-1", "ES384")]})
    return create_app(Settings(knowledge_root=ROOT, auth=auth, max_body_bytes=200_000, public_url=PUBLIC)).test_client()


def token(key, aud: str, *, kid: str = "ehr-1", iss: str = ISS, **claims) -> str:
    now = int(time.time())
    payload = {"iss": iss, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(payload, key, algorithm="ES384", headers={"kid": kid, "typ": "JWT"})


def auth(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


def test_a_signed_call_is_answered_on_every_endpoint(production, key):
    assert production.get("/cds-services", headers=auth(token(key, PUBLIC + "/cds-services"))).status_code == 200
    response = production.post(SELECT, json=REQUEST, headers=auth(token(key, PUBLIC + SELECT)))
    assert response.status_code == 200 and response.get_json()["cards"]
    card = next(c for c in response.get_json()["cards"] if c.get("suggestions"))
    feedback = {"feedback": [{"card": card["uuid"], "outcome": "accepted", "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                              "outcomeTimestamp": "2026-11-24T10:00:00Z"}]}
    assert production.post(SELECT + "/feedback", json=feedback, headers=auth(token(key, PUBLIC + SELECT + "/feedback"))).status_code == 200


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
    assert production.post(SELECT, json=REQUEST, headers=auth(token(key, PUBLIC + "/cds-services/ivig-order-sign"))).status_code == 401
    assert production.post(SELECT, json=REQUEST, headers=auth(token(key, PUBLIC + SELECT, iss="https://other.example"))).status_code == 401
    once = token(key, PUBLIC + SELECT)
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
    response = production.post(SELECT, json=body, headers=auth(token(key, PUBLIC + SELECT)))
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
    response = production.post(SELECT, json=padded, headers=auth(token(key, PUBLIC + SELECT)))
    assert response.status_code == 413 and response.get_json()["resourceType"] == "OperationOutcome"


def test_deep_nesting_is_a_400_not_a_500(client):
    deep = "[" * 5000 + "]" * 5000
    body = json.dumps(REQUEST)[:-1] + ', "extension": {"org.example.deep": ' + deep + "}}"
    response = client.post(SELECT, data=body, content_type="application/json")
    assert response.status_code == 400


def test_logs_carry_no_patient_identifier_or_token(caplog, fhir):
    # the loopback stub allowlisted: without an allowlist, development mode sends nothing to loopback (and logs nothing)
    client = create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(),
                                 fhir_servers=(fhir.base_url,))).test_client()
    body = hook_request([ivig_order()], fhirServer=fhir.base_url, fhirAuthorization={"access_token": "tok-secret", "token_type": "Bearer"})
    with caplog.at_level("DEBUG"):
        client.post(SELECT, json=body)
    assert caplog.records and PATIENT_ID not in caplog.text and "tok-secret" not in caplog.text


# --- headers, tokens in URLs, audience, configuration ---------------------------------------------------------------

def test_security_headers_on_every_answer(production, key, client):
    answers = {
        "discovery": production.get("/cds-services", headers=auth(token(key, PUBLIC + "/cds-services"))),
        "hook call": production.post(SELECT, json=REQUEST, headers=auth(token(key, PUBLIC + SELECT))),
        "401": production.post(SELECT, json=REQUEST),
        "404": production.get("/no-such-thing", headers=auth(token(key, PUBLIC + "/no-such-thing"))),
        "$apply": production.post("/fhir/PlanDefinition/efns-ivig-gbs/$apply", json={"resourceType": "Parameters"},
                                  headers=auth(token(key, PUBLIC + "/fhir/PlanDefinition/efns-ivig-gbs/$apply"))),
    }
    assert answers["hook call"].status_code == 200 and answers["$apply"].status_code == 400
    for name, response in answers.items():
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Strict-Transport-Security"].startswith("max-age="), name  # the public URL is https
    for name in ("hook call", "$apply", "401"):
        assert answers[name].headers["Cache-Control"] == "no-store", name
    assert "Strict-Transport-Security" not in client.get("/cds-services").headers  # development, no https public URL


def test_a_token_in_the_query_string_is_refused_with_the_reason(production, key):
    response = production.post(SELECT + "?access_token=" + token(key, PUBLIC + SELECT), json=REQUEST)
    assert response.status_code == 400
    assert "Authorization header" in response.get_json()["issue"][0]["diagnostics"]


def test_a_token_for_another_deployment_is_refused_whatever_host_and_forwarded_headers_say(production, key):
    other = "https://cds.other-hospital.example"
    headers = {**auth(token(key, other + SELECT)), "Host": "cds.other-hospital.example", "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "cds.other-hospital.example"}
    assert production.post(SELECT, json=REQUEST, headers=headers, base_url=other).status_code == 401


def test_production_without_a_public_url_answers_503_with_the_reason(key):
    auth_settings = AuthSettings(trusted_issuers=frozenset({ISS}), jwks={"keys": [public_jwk(key, "ehr-1", "ES384")]})
    app = create_app(Settings(knowledge_root=ROOT, auth=auth_settings)).test_client()
    response = app.post(SELECT, json=REQUEST, headers=auth(token(key, BASE + SELECT)))
    assert response.status_code == 503 and "IVIG_CDS_PUBLIC_URL" in response.get_json()["issue"][0]["diagnostics"]
    assert app.post(SELECT, json=REQUEST).status_code == 401  # no token: as before


def test_replay_store_failure_is_503_and_an_issuer_over_quota_429(key, tmp_path):
    import sqlite3

    store = str(tmp_path / "jti.sqlite3")
    auth_settings = AuthSettings(trusted_issuers=frozenset({ISS}), jwks={"keys": [public_jwk(key, "ehr-1", "ES384")]},
                                 replay_store=store, replay_store_timeout_seconds=0.05, replay_quota_per_issuer=2)
    app = create_app(Settings(knowledge_root=ROOT, auth=auth_settings, public_url=PUBLIC)).test_client()
    assert app.post(SELECT, json=REQUEST, headers=auth(token(key, PUBLIC + SELECT))).status_code == 200
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = app.post(SELECT, json=REQUEST, headers=auth(token(key, PUBLIC + SELECT)))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert locked.status_code == 503 and int(locked.headers["Retry-After"]) > 0
    assert locked.get_json()["issue"][0]["code"] == "transient"
    assert app.post(SELECT, json=REQUEST, headers=auth(token(key, PUBLIC + SELECT))).status_code == 200
    over = app.post(SELECT, json=REQUEST, headers=auth(token(key, PUBLIC + SELECT)))
    assert over.status_code == 429 and 0 < int(over.headers["Retry-After"]) <= 300 + 60
    assert over.get_json()["issue"][0]["code"] == "throttled"


@pytest.mark.parametrize("environ, reason", [
    ({"IVIG_CDS_JKU_ALLOWLIST": "http://ehr.example.org/jwks.json"}, "JKU_ALLOWLIST"),
    ({"IVIG_CDS_PUBLIC_URL": "http://cds.example.org"}, "PUBLIC_URL"),
    ({"IVIG_CDS_PUBLIC_URL": "cds.example.org"}, "PUBLIC_URL"),
    ({"IVIG_CDS_PUBLIC_URL": "https://cds.example.org/?x=1"}, "PUBLIC_URL"),
    ({"IVIG_CDS_MAX_JSON_DEPTH": "0"}, "MAX_JSON_DEPTH"),
    ({"IVIG_CDS_THREADS": "0"}, "THREADS"),
    ({"IVIG_CDS_KEEPALIVE_SECONDS": "0"}, "KEEPALIVE_SECONDS"),
])
def test_production_refuses_unsafe_or_broken_settings(environ, reason):
    with pytest.raises(ConfigurationError, match=reason):
        Settings.from_env({"IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT), **environ})


def test_new_settings_from_the_environment():
    settings = Settings.from_env({"IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT), "IVIG_CDS_PUBLIC_URL": "https://cds.example.org/",
                                  "IVIG_CDS_MAX_DRAFT_ORDERS": "7", "IVIG_CDS_MAX_BUNDLE_ENTRIES": "8", "IVIG_CDS_MAX_JSON_DEPTH": "9",
                                  "IVIG_CDS_THREADS": "3", "IVIG_CDS_MAX_CONNECTIONS": "50", "IVIG_CDS_KEEPALIVE_SECONDS": "2",
                                  "IVIG_CDS_REQUEST_READ_SECONDS": "4.5", "IVIG_CDS_REPLAY_QUOTA_PER_ISSUER": "10"})
    assert settings.public_url == "https://cds.example.org"
    assert (settings.limits.max_draft_orders, settings.limits.max_bundle_entries, settings.limits.max_json_depth) == (7, 8, 9)
    assert (settings.server.threads, settings.server.max_connections, settings.server.keepalive_seconds,
            settings.server.request_read_seconds) == (3, 50, 2, 4.5)
    assert settings.auth.replay_quota_per_issuer == 10 and settings.auth.max_lifetime_seconds == 300
    dev = Settings.from_env({"IVIG_CDS_MODE": "development", "IVIG_CDS_JKU_ALLOWLIST": "http://localhost:9000/jwks.json"})
    assert "http://localhost:9000/jwks.json" in dev.auth.jku_allowlist  # development may use a local http jku
