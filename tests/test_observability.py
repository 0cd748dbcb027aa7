"""Health, readiness, metrics, request ids and JSON logs (observability.py, metrics.py, jsonlog.py, forwarded.py):
in the app, and through `ivig-cds serve` with two worker processes."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from cds_service.app import create_app
from cds_service.auth import AuthSettings
from cds_service.config import ConfigurationError, Settings
from cds_service.forwarded import TrustedProxies
from cds_service.jsonlog import JsonFormatter
from cds_service.store import engine_url
from tests.conftest import ROOT
from tests.fhir_data import PATIENT_ID, gbs, hook_request, ivig_order, prefetch, weight
from tests.fhir_stub_server import FhirStub
from tests.redis_fixtures import OwnRedis
from tests.service_process import BODY, ISS, KEY, PUBLIC, SELECT, serving, signed
from tests.test_auth import public_jwk

METRICS_TOKEN = "metrics-token-0123456789"
PROXY = "10.0.0.7"
REQUEST = hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=[weight(70)]))


def settings(tmp_path, **overrides) -> Settings:
    auth = AuthSettings(trusted_issuers=frozenset({ISS}), jwks={"keys": [public_jwk(KEY, "ehr-1", "ES384")]},
                        replay_store=overrides.pop("replay_store", str(tmp_path / "jti.sqlite3")))
    base = {"knowledge_root": ROOT, "auth": auth, "public_url": PUBLIC, "metrics_token": METRICS_TOKEN,
            "trusted_proxies": (ipaddress.ip_network("10.0.0.0/24"),), "store_url": f"sqlite:///{tmp_path / 'store.sqlite3'}"}
    return Settings(**{**base, **overrides})


@pytest.fixture()
def production(tmp_path):
    return create_app(settings(tmp_path)).test_client()


def bearer(aud: str) -> dict:
    return {"Authorization": f"Bearer {signed(aud)}"}


def samples(client, base: str = "") -> dict[tuple[str, tuple], float]:
    """GET /metrics (from a Flask test client, or from ``requests`` at ``base``): each sample by (name, sorted labels)."""
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    response = client.get(base + "/metrics", headers=headers, **({"timeout": 10} if base else {}))
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    body = response.text if base else response.get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(body) for s in f.samples}


# --- health and readiness ---------------------------------------------------------------------------------------

def test_health_and_readiness_need_no_jwt_and_say_nothing_of_patients(production):
    alive = production.get("/healthz")
    assert alive.status_code == 200 and alive.get_json() == {"status": "alive"}
    ready = production.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "checks": {"knowledge": "ok", "card_store": "ok", "replay_store": "ok"}}
    assert ready.headers["Cache-Control"] == "no-store"
    assert production.post("/cds-services/ivig-order-select", json={}).status_code == 401  # hook calls still need a JWT


def test_readiness_is_503_naming_the_store_that_does_not_answer(tmp_path, postgres_url):
    """The real stores of several hosts: Redis stopped and started again; PostgreSQL without our schema."""
    redis_server = OwnRedis(tmp_path)
    redis_server.start()
    try:
        client = create_app(settings(tmp_path, replay_store=redis_server.url, store_url=postgres_url)).test_client()
        assert client.get("/readyz").status_code == 200
        redis_server.stop()
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.get_json() == {"status": "not ready", "checks": {"knowledge": "ok", "card_store": "ok",
                                                                     "replay_store": "unavailable"}}
        redis_server.start()
        assert client.get("/readyz").status_code == 200
        admin = create_engine(engine_url(postgres_url))
        with admin.begin() as connection:
            connection.execute(text("DROP TABLE alembic_version"))
        admin.dispose()
        broken = client.get("/readyz")
        assert broken.status_code == 503 and broken.get_json()["checks"] == {"knowledge": "ok", "card_store": "unavailable",
                                                                            "replay_store": "ok"}
    finally:
        redis_server.stop()


# --- metrics ------------------------------------------------------------------------------------------------------

def test_metrics_are_served_only_with_their_own_credential(tmp_path, production):
    closed = create_app(settings(tmp_path / "closed", metrics_token=None)).test_client()
    assert closed.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 404
    assert production.get("/metrics").status_code == 401
    assert production.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert production.get("/metrics", headers=bearer(PUBLIC + "/metrics")).status_code == 401  # a CDS client JWT is not it
    assert production.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200
    with pytest.raises(ConfigurationError, match="METRICS_TOKEN"):
        settings(tmp_path, metrics_token="short")


def test_metrics_count_requests_cards_and_jwt_rejections_by_reason(production):
    before = samples(production)
    answer = production.post(SELECT, json=REQUEST, headers=bearer(PUBLIC + SELECT))
    assert answer.status_code == 200
    cards = answer.get_json()["cards"]
    replayed = bearer(PUBLIC + SELECT)
    assert production.post(SELECT, json=REQUEST, headers=replayed).status_code == 200
    assert production.post(SELECT, json=REQUEST, headers=replayed).status_code == 401
    assert production.post(SELECT, json=REQUEST, headers=bearer("https://cds.other.example" + SELECT)).status_code == 401
    assert production.post(SELECT, json=REQUEST).status_code == 401
    after = samples(production)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    expected: dict[tuple[str, str], int] = {}
    for card in cards:
        key = (card["source"]["topic"]["code"], card["indicator"])
        expected[key] = expected.get(key, 0) + 2  # the call and the first use of the replayed token
    for (recommendation, indicator), count in expected.items():
        assert delta("ivig_cds_cards_total", recommendation=recommendation, indicator=indicator) == count
    for reason in ("replayed", "audience", "no_token"):
        assert delta("ivig_cds_jwt_rejections_total", reason=reason) == 1, reason
    call = {"endpoint": "cds_hooks.call", "service": "ivig-order-select"}
    assert delta("ivig_cds_request_duration_seconds_count", **call, status="200") == 2
    assert delta("ivig_cds_request_duration_seconds_count", **call, status="401") == 3
    assert delta("ivig_cds_request_duration_seconds_bucket", **call, status="200", le="+Inf") == 2
    # an id that is not one of our services is not a label of its own: a client cannot make up series
    production.post("/cds-services/made-up-" + "x" * 20, json=REQUEST, headers=bearer(PUBLIC + "/cds-services/made-up-" + "x" * 20))
    assert not any("made-up" in str(key) for key in samples(production))


def test_metrics_count_fhir_fallback_queries_and_failures_by_reason(tmp_path):
    with FhirStub() as fhir:  # knows no patient: every search gets 404
        client = create_app(settings(tmp_path, mode="development", auth=AuthSettings.development(), public_url=None,
                                             fhir_servers=(fhir.base_url,))).test_client()
        before = samples(client)
        answer = client.post(SELECT, json=hook_request([ivig_order()], fhirServer=fhir.base_url))
        sent = len(fhir.requests)
    assert answer.status_code == 412 and sent > 0
    after = samples(client)
    queries = after[("ivig_cds_fhir_fallback_queries_total", ())] - before.get(("ivig_cds_fhir_fallback_queries_total", ()), 0)
    assert 0 < queries <= sent
    reasons = {issue["code"] for issue in answer.get_json()["issue"]}
    failures = {key[1][0][1]: value - before.get(key, 0.0) for key, value in after.items()
                if key[0] == "ivig_cds_fhir_fallback_failures_total" and value - before.get(key, 0.0) > 0}
    assert set(failures) == reasons and 0 < sum(failures.values()) <= queries


# --- request ids and client addresses ----------------------------------------------------------------------------

class Lines(logging.Handler):
    """Log records as the JSON lines the service writes."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_what_the_fhir_query_threads_log_carries_the_request_id(tmp_path):
    """The FHIR fallback's queries run on the process's pool: their log lines must still say which request they
    serve. urllib3 logs each query there, at DEBUG, which the service keeps off (the URLs name the patient): the
    test turns it on to see the lines."""
    lines, urllib3_log = Lines(), logging.getLogger("urllib3")
    level = urllib3_log.level
    urllib3_log.addHandler(lines)
    try:
        with FhirStub() as fhir:
            client = create_app(settings(tmp_path, mode="development", auth=AuthSettings.development(), public_url=None,
                                         fhir_servers=(fhir.base_url,))).test_client()
            urllib3_log.setLevel(logging.DEBUG)
            answer = client.post(SELECT, json=hook_request([ivig_order()], fhirServer=fhir.base_url))
    finally:
        urllib3_log.removeHandler(lines)
        urllib3_log.setLevel(level)
    queries = [line for line in lines.lines if '"GET /' in line["message"]]  # one line per query sent
    assert len(queries) == len(fhir.requests) > 0, lines.lines
    assert {line.get("request_id") for line in lines.lines} == {answer.headers["X-Request-ID"]}

def test_a_request_id_on_every_answer_taken_from_a_trusted_proxy_only(production):
    first, second = production.get("/healthz"), production.post(SELECT, json=REQUEST)
    for response in (first, second):
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    forged = production.get("/healthz", headers={"X-Request-ID": "chosen-by-the-client"})
    assert forged.headers["X-Request-ID"] != "chosen-by-the-client"  # the test client's peer is no proxy of ours
    proxied = production.get("/healthz", headers={"X-Request-ID": "a1b2c3-proxy"}, environ_base={"REMOTE_ADDR": PROXY})
    assert proxied.headers["X-Request-ID"] == "a1b2c3-proxy"
    odd = production.get("/healthz", headers={"X-Request-ID": "x" * 200}, environ_base={"REMOTE_ADDR": PROXY})
    assert odd.headers["X-Request-ID"] != "x" * 200


@pytest.mark.parametrize("peer, forwarded_for, client", [
    ("203.0.113.5", "198.51.100.1", "203.0.113.5"),  # not a proxy of ours: its header is ignored
    ("10.0.0.7", "198.51.100.1", "198.51.100.1"),  # our proxy says who called it
    ("10.0.0.7", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the client's own entry, left of our proxy's, is ignored
    ("10.0.0.7", "198.51.100.1, 10.0.0.9", "198.51.100.1"),  # two proxies of ours
    ("10.0.0.7", "not-an-address", "10.0.0.7"),
    ("10.0.0.7", None, "10.0.0.7"),
    ("fd00::1", "2001:db8::5", "2001:db8::5"),
])
def test_the_client_address_believes_trusted_proxies_only(peer, forwarded_for, client):
    proxies = TrustedProxies([ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/8")])
    assert proxies.client_address(peer, forwarded_for) == client


def test_trusted_proxies_from_the_environment():
    settings = Settings.from_env({"IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT), "IVIG_CDS_TRUSTED_PROXIES": "10.0.0.5, 192.168.0.0/16,fd00::/8",
                                  "IVIG_CDS_METRICS_TOKEN": METRICS_TOKEN, "IVIG_CDS_REPLAY_STORE": "redis://cache:6379/2",
                                  "IVIG_CDS_REPLAY_KEY_PREFIX": "hospital-a:jti:"})
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.5/32", "192.168.0.0/16", "fd00::/8"]
    assert settings.metrics_token == METRICS_TOKEN and METRICS_TOKEN not in repr(settings)
    assert settings.auth.replay_store == "redis://cache:6379/2" and settings.auth.replay_key_prefix == "hospital-a:jti:"
    with pytest.raises(ConfigurationError, match="TRUSTED_PROXIES"):
        Settings.from_env({"IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT), "IVIG_CDS_TRUSTED_PROXIES": "proxy.example"})
    with pytest.raises(ConfigurationError, match="REPLAY_STORE"):
        Settings.from_env({"IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT), "IVIG_CDS_REPLAY_STORE": "redis:///0"})


# --- JSON logs --------------------------------------------------------------------------------------------------

def test_an_exception_is_logged_as_its_type_and_places_without_its_message():
    try:
        raise ValueError(f"no weight for patient {PATIENT_ID}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "unhandled error", None, sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "unhandled error" and line["exception"] == "ValueError" and line["trace"]
    assert PATIENT_ID not in json.dumps(line)


def test_serve_logs_json_lines_with_request_ids_and_shares_metrics_between_workers(tmp_path):
    """Two worker processes: every scrape shows the requests of both, whichever answers it; every log line is one
    JSON object; the access line names the request id the answer carried; no token, no patient id in the log."""
    fhir_token = "fhir-access-token-secret"
    body = json.loads(BODY)
    body["fhirAuthorization"] = {"access_token": fhir_token, "token_type": "Bearer", "expires_in": 300, "scope": "x",
                                 "subject": "ivig-cds"}
    body["fhirServer"] = "https://fhir.hospital.example/r4"
    with serving(tmp_path, workers=2, IVIG_CDS_METRICS_TOKEN=METRICS_TOKEN) as server:
        token = signed(PUBLIC + SELECT)
        call = requests.post(server.base + SELECT, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert call.status_code == 200 and call.json()["cards"]
        # discovery needs no JWT: 8 answers, a new connection each
        discovered = [requests.get(server.base + "/cds-services", timeout=10) for _ in range(8)]
        assert {r.status_code for r in discovered} == {200}
        scrapes = []
        for _ in range(4):
            scraped = samples(requests, base=server.base)
            scrapes.append(scraped[("ivig_cds_request_duration_seconds_count",
                                    (("endpoint", "cds_hooks.discovery"), ("service", ""), ("status", "200")))])
        lines = server.log_lines()
    assert scrapes == [8.0] * 4
    access = [line for line in lines if line["logger"] == "cds_service.access"]
    pids = {line["pid"] for line in access}
    print(f"\naccess lines from worker pids {sorted(pids)}")
    (call_line,) = [line for line in access if line["path"] == SELECT]
    assert call_line["request_id"] == call.headers["X-Request-ID"] and call_line["status"] == 200
    assert call_line["service"] == "ivig-order-select" and call_line["client"] == "127.0.0.1" and call_line["duration_ms"] > 0
    assert {line["request_id"] for line in access if line["path"] == "/cds-services"} == {r.headers["X-Request-ID"] for r in discovered}
    text_of_log = server.log.read_text()
    for secret in (token, token.split(".")[1], fhir_token, PATIENT_ID, METRICS_TOKEN):
        assert secret not in text_of_log
