"""The card and feedback store through HTTP: every card returned is recorded (and nothing about the patient),
feedback is checked against those cards and stored, retention deletes old cards at start-up.

Each test runs on a SQLite file and on the real PostgreSQL (tests/store_fixtures.py)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from cds_service.app import create_app
from cds_service.auth import AuthSettings
from cds_service.config import ConfigurationError, Settings, default_store_url
from cds_service.store import CARDS, FEEDBACK, Store
from tests.conftest import ROOT
from tests.fhir_data import for_patient, gbs, hook_request, ivig_order, medication_request, patient, prefetch, weight

SELECT = "/cds-services/ivig-order-select"
SIGN = "/cds-services/ivig-order-sign"
NON_ADHERENCE = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"


def make_app(store_url: str, **settings):
    return create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(),
                               store_url=store_url, **settings))


@pytest.fixture()
def app(store_url):
    return make_app(store_url)


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def store(app) -> Store:
    return app.extensions["ivig_cds"].store


def gbs_request(hook: str = "order-select", **order) -> dict:
    return hook_request([ivig_order(**order)], hook=hook, prefetch=prefetch(conditions=[gbs()], weights=[weight(70)]))


def cards_of(client, body: dict, path: str = SELECT) -> list[dict]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["cards"]


def written(client) -> None:
    """Wait for the writer: the cards are recorded off the request path (recording.py)."""
    assert client.application.extensions["ivig_cds"].recorder.flush(timeout=30)


def rows(store: Store, table) -> list[dict]:
    with store.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(table))]


def feedback_count(store: Store) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(FEEDBACK)).scalar_one()


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- recording -----------------------------------------------------------------------------------------


def test_every_card_returned_is_recorded_with_its_suggestions(client, store):
    before = datetime.now(UTC)
    cards = cards_of(client, gbs_request())
    assert cards
    written(client)
    recorded = {row["uuid"]: row for row in rows(store, CARDS)}
    assert set(recorded) == {c["uuid"] for c in cards}
    for card in cards:
        row = recorded[card["uuid"]]
        assert row["recommendation"] == card["source"]["topic"]["code"]
        assert row["indicator"] == card["indicator"]
        assert (row["service_id"], row["hook"]) == ("ivig-order-select", "order-select")
        assert row["suggestions"] == [s["uuid"] for s in card.get("suggestions", [])]
        assert before - timedelta(seconds=1) <= row["shown_at"] <= datetime.now(UTC) + timedelta(seconds=1)
    assert any(row["suggestions"] for row in recorded.values()), "the GBS card carries the regimen as a suggestion"


def test_a_call_without_cards_records_nothing(client, store):
    other = hook_request([medication_request("N02BE01", status="draft", id="para")], prefetch=prefetch())
    assert cards_of(client, other) == []
    written(client)
    assert rows(store, CARDS) == []


def test_no_patient_data_is_stored(client, store, store_url, tmp_path):
    """Distinctive values in every part of the request that names or describes the patient; none may reach
    the store: not its rows, and (for SQLite) not a byte of its files."""
    secrets = {"patient": f"pat-{uuid.uuid4().hex}", "user": f"Practitioner/{uuid.uuid4().hex}",
               "encounter": f"enc-{uuid.uuid4().hex}", "birth": "1961-03-17", "name": f"Zq{uuid.uuid4().hex[:10]}",
               "weight": "73.123", "hookInstance": str(uuid.uuid4())}
    person = {**patient(secrets["birth"]), "id": secrets["patient"], "name": [{"family": secrets["name"]}]}
    body = hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=[weight(float(secrets["weight"]))],
                                                          patient_resource=person))
    body = for_patient(body, secrets["patient"])
    body["context"].update(userId=secrets["user"], encounterId=secrets["encounter"])
    body["hookInstance"] = secrets["hookInstance"]
    cards = cards_of(client, body)
    assert cards and any(secrets["weight"] in c["detail"] or "73.1" in c["detail"] for c in cards)  # the card used them
    card = cards[0]
    comment = "discussed with the neurologist"
    assert client.post(SELECT + "/feedback", json={"feedback": [{
        "card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": now_iso(),
        "overrideReason": {"reason": {"system": NON_ADHERENCE, "code": "expert-contradicts"}, "userComment": comment}}]}).status_code == 200
    written(client)
    stored = repr(rows(store, CARDS)) + repr(rows(store, FEEDBACK))
    for name, value in secrets.items():
        assert value not in stored, name
    if store.kind == "sqlite":
        store.release_connections()
        folder = Path(store.engine.url.database).parent
        files = b"".join(p.read_bytes() for p in folder.iterdir())
        assert card["uuid"].encode() in files and comment.encode() in files  # the check reads where data is
        for name, value in secrets.items():
            assert value.encode() not in files, name


def test_cards_are_answered_even_when_they_cannot_be_recorded(client, store, caplog):
    """The advice matters more than its record: with the store's tables gone, the call still gets its cards, and the
    log says which call's cards were not recorded."""
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE cds_feedback"))
        connection.execute(text("DROP TABLE cds_card"))
    answer = client.post(SELECT, json=gbs_request())
    assert answer.status_code == 200 and answer.get_json()["cards"]
    written(client)
    (line,) = [r for r in caplog.records if r.name == "cds_service.recording"]
    assert line.levelname == "ERROR" and "not recorded" in line.getMessage()
    assert line.request_id == answer.headers["X-Request-ID"] and line.cards == len(answer.get_json()["cards"])
    response = client.post(SELECT + "/feedback", json={"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted",
                                                                       "outcomeTimestamp": now_iso()}]})
    assert response.status_code == 503
    assert response.get_json()["issue"][0]["code"] == "transient"


def test_a_call_the_store_refuses_costs_no_other_call_its_record(app, client, store, caplog):
    """Calls recorded together share a transaction; when the store refuses one call's rows (here: cards recorded
    already), every other call is still recorded and the refused one is logged."""
    first, second = cards_of(client, gbs_request()), cards_of(client, gbs_request())
    written(client)
    recorder = app.extensions["ivig_cds"].recorder
    third = cards_of(client, gbs_request())
    recorder.record("ivig-order-select", "order-select", first, request_id="again")  # same uuids: refused
    recorder.record("ivig-order-select", "order-select", [dict(c, uuid=str(uuid.uuid4())) for c in second])
    written(client)
    assert len(rows(store, CARDS)) == len(first) + 2 * len(second) + len(third)
    refused = [r for r in caplog.records if r.name == "cds_service.recording"]
    assert [r.request_id for r in refused] == ["again"]


def test_cards_handed_to_the_recorder_are_written_before_the_process_ends(store_url, tmp_path):
    """A process that answered and ends normally (gunicorn ends a worker with sys.exit) leaves no card unwritten."""
    script = (
        "import sys, uuid\n"
        "from cds_service.recording import CardRecorder\n"
        "from cds_service.store import Store\n"
        "recorder = CardRecorder(Store(sys.argv[1]))\n"
        "for n in range(50):\n"
        "    recorder.record('ivig-order-select', 'order-select', [{'uuid': f'exit-{n}', 'indicator': 'info'}])\n"
        "sys.exit(0)\n"
    )
    make_app(store_url)  # creates the schema
    done = subprocess.run([sys.executable, "-c", script, store_url], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    store = Store(store_url)
    assert sorted(r["uuid"] for r in rows(store, CARDS)) == sorted(f"exit-{n}" for n in range(50))
    store.release_connections()


# ---- feedback ------------------------------------------------------------------------------------------


def test_valid_feedback_is_stored_whole(client, store):
    cards = cards_of(client, gbs_request())
    with_suggestion = next(c for c in cards if c.get("suggestions"))
    other = next((c for c in cards if c is not with_suggestion), None) or cards_of(client, gbs_request())[0]
    accepted_at, overridden_at = "2026-11-24T10:05:31.250Z", "2026-11-24T12:05:31+02:00"
    body = {"feedback": [
        {"card": with_suggestion["uuid"], "outcome": "accepted", "outcomeTimestamp": accepted_at,
         "acceptedSuggestions": [{"id": with_suggestion["suggestions"][0]["uuid"]}]},
        {"card": other["uuid"], "outcome": "overridden", "outcomeTimestamp": overridden_at,
         "overrideReason": {"reason": {"system": NON_ADHERENCE, "code": "risk-benefit-ratio",
                                       "display": "Recipient assessment of risk/benefit ratio"},
                            "userComment": "renal function; slower infusion planned"}},
    ]}
    response = client.post(SELECT + "/feedback", json=body)
    assert response.status_code == 200 and response.get_json() == {}
    stored = {row["card_uuid"]: row for row in rows(store, FEEDBACK)}
    accepted, overridden = stored[with_suggestion["uuid"]], stored[other["uuid"]]
    assert accepted["outcome"] == "accepted"
    assert accepted["accepted_suggestions"] == [with_suggestion["suggestions"][0]["uuid"]]
    assert accepted["outcome_at"] == datetime(2026, 11, 24, 10, 5, 31, 250000, tzinfo=UTC)
    assert accepted["override_code"] is None and accepted["override_comment"] is None
    assert overridden["outcome"] == "overridden" and overridden["accepted_suggestions"] == []
    assert overridden["outcome_at"] == datetime(2026, 11, 24, 10, 5, 31, tzinfo=UTC)  # +02:00 read as UTC
    assert (overridden["override_system"], overridden["override_code"], overridden["override_display"]) == (
        NON_ADHERENCE, "risk-benefit-ratio", "Recipient assessment of risk/benefit ratio")
    assert overridden["override_comment"] == "renal function; slower infusion planned"


def test_a_comment_alone_is_an_override_reason(client, store):
    card = cards_of(client, gbs_request())[0]
    body = {"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": now_iso(),
                          "overrideReason": {"userComment": "patient declined"}}]}
    assert client.post(SELECT + "/feedback", json=body).status_code == 200
    (row,) = rows(store, FEEDBACK)
    assert row["override_code"] is None and row["override_comment"] == "patient declined"


def _bad(shown: dict, **changes) -> dict:
    entry = {"card": shown["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-24T10:05:31Z", **changes}
    return {"feedback": [{k: v for k, v in entry.items() if v is not None}]}


BAD_FEEDBACK = {
    "unknown card": (lambda c: _bad(c, card=str(uuid.uuid4())), "feedback[0].card", "not a card this service returned"),
    "card not a string": (lambda c: _bad(c, card=42), "feedback[0].card", "uuid"),
    "suggestion not on the card": (lambda c: _bad(c, acceptedSuggestions=[{"id": str(uuid.uuid4())}]),
                                   "feedback[0].acceptedSuggestions[0].id", "not a suggestion of card"),
    "acceptedSuggestions not an array": (lambda c: _bad(c, acceptedSuggestions={"id": c["suggestions"][0]["uuid"]}),
                                         "feedback[0].acceptedSuggestions", "array"),
    "acceptedSuggestions of strings": (lambda c: _bad(c, acceptedSuggestions=[c["suggestions"][0]["uuid"]]),
                                       "feedback[0].acceptedSuggestions[0]", "object"),
    "accepted suggestion on an override": (lambda c: _bad(c, outcome="overridden",
                                                          acceptedSuggestions=[{"id": c["suggestions"][0]["uuid"]}]),
                                           "feedback[0].acceptedSuggestions", "only for an accepted outcome"),
    "timestamp without a zone": (lambda c: _bad(c, outcomeTimestamp="2026-11-24T10:05:31"), "feedback[0].outcomeTimestamp", "time zone"),
    "timestamp a date only": (lambda c: _bad(c, outcomeTimestamp="2026-11-24"), "feedback[0].outcomeTimestamp", "ISO 8601"),
    "timestamp not a date": (lambda c: _bad(c, outcomeTimestamp="yesterday"), "feedback[0].outcomeTimestamp", "ISO 8601"),
    "timestamp impossible": (lambda c: _bad(c, outcomeTimestamp="2026-02-30T10:00:00Z"), "feedback[0].outcomeTimestamp", "not a real date"),
    "timestamp a number": (lambda c: _bad(c, outcomeTimestamp=1764000000), "feedback[0].outcomeTimestamp", "ISO 8601"),
    "timestamp missing": (lambda c: {"feedback": [{"card": c["uuid"], "outcome": "accepted"}]}, "feedback[0].outcomeTimestamp", "ISO 8601"),
    "outcome unknown": (lambda c: _bad(c, outcome="ignored"), "feedback[0].outcome", "accepted, overridden"),
    "overrideReason a string": (lambda c: _bad(c, outcome="overridden", overrideReason="too expensive"),
                                "feedback[0].overrideReason", "object"),
    "overrideReason without code": (lambda c: _bad(c, outcome="overridden", overrideReason={"reason": {"system": NON_ADHERENCE}}),
                                    "feedback[0].overrideReason.reason.code", "non-empty string"),
    "overrideReason reason a string": (lambda c: _bad(c, outcome="overridden", overrideReason={"reason": "risk-benefit-ratio"}),
                                       "feedback[0].overrideReason.reason", "Coding"),
    "overrideReason comment a number": (lambda c: _bad(c, outcome="overridden", overrideReason={"userComment": 5}),
                                        "feedback[0].overrideReason.userComment", "string"),
    "overrideReason empty": (lambda c: _bad(c, outcome="overridden", overrideReason={}), "feedback[0].overrideReason", "reason"),
    "overrideReason on an acceptance": (lambda c: _bad(c, overrideReason={"userComment": "x"}), "feedback[0].overrideReason",
                                        "only for an overridden outcome"),
    "entry not an object": (lambda c: {"feedback": [c["uuid"]]}, "feedback[0]", "object"),
    "feedback not an array": (lambda c: {"feedback": _bad(c)["feedback"][0]}, "`feedback` array", ""),
    "feedback empty": (lambda c: {"feedback": []}, "at least one entry", ""),
}


@pytest.mark.parametrize("case", BAD_FEEDBACK, ids=list(BAD_FEEDBACK))
def test_bad_feedback_gets_400_with_the_reason_and_stores_nothing(client, store, case):
    make, field, words = BAD_FEEDBACK[case]
    card = next(c for c in cards_of(client, gbs_request()) if c.get("suggestions"))
    good = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": now_iso()}
    body = make(card)
    if isinstance(body.get("feedback"), list) and body["feedback"]:
        body["feedback"] = [good] + body["feedback"]  # a valid entry first: the request is refused whole
        field = field.replace("feedback[0]", "feedback[1]")
    response = client.post(SELECT + "/feedback", json=body)
    assert response.status_code == 400, response.get_json()
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "invalid"
    assert field in outcome["issue"][0]["diagnostics"] and words in outcome["issue"][0]["diagnostics"]
    assert feedback_count(store) == 0


def test_feedback_is_for_the_service_that_returned_the_card(client, store):
    card = cards_of(client, gbs_request())[0]
    response = client.post(SIGN + "/feedback", json=_bad(card))
    assert response.status_code == 400
    assert "returned by ivig-order-select, not by ivig-order-sign" in response.get_json()["issue"][0]["diagnostics"]
    assert client.post(SELECT + "/feedback", data=b"{not json", content_type="application/json").status_code == 400
    assert feedback_count(store) == 0


# ---- retention and settings ----------------------------------------------------------------------------


def test_start_up_deletes_cards_and_feedback_older_than_the_retention(store_url):
    first = make_app(store_url, retention_days=0)  # 0 keeps everything
    store = first.extensions["ivig_cds"].store
    now = datetime.now(UTC)
    for uuid_, age in (("old", 31), ("recent", 29)):
        store.record_cards("ivig-order-select", "order-select",
                           [{"uuid": uuid_, "indicator": "info", "source": {"topic": {"code": "GBS-1"}}}], now=now - timedelta(days=age))
    client = first.test_client()
    for uuid_ in ("old", "recent"):
        assert client.post(SELECT + "/feedback", json={"feedback": [{"card": uuid_, "outcome": "accepted",
                                                                     "outcomeTimestamp": now_iso()}]}).status_code == 200
    make_app(store_url, retention_days=0)
    assert {r["uuid"] for r in rows(store, CARDS)} == {"old", "recent"}
    make_app(store_url, retention_days=30)
    assert {r["uuid"] for r in rows(store, CARDS)} == {"recent"}
    assert [r["card_uuid"] for r in rows(store, FEEDBACK)] == ["recent"]


def test_store_settings_from_the_environment(tmp_path):
    env = {"IVIG_CDS_STORE_URL": f"sqlite:///{tmp_path}/s.sqlite3", "IVIG_CDS_RETENTION_DAYS": "365",
           "IVIG_CDS_REVIEWER_TOKEN": "r" * 32, "IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT)}
    settings = Settings.from_env(env)
    assert (settings.store_url, settings.retention_days, settings.reviewer_token) == (env["IVIG_CDS_STORE_URL"], 365, "r" * 32)
    assert "r" * 32 not in repr(settings) and "s.sqlite3" not in repr(settings)  # a URL may carry a password
    defaults = Settings.from_env({"IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT)})
    assert defaults.store_url == default_store_url() and defaults.retention_days == 730 and defaults.reviewer_token is None
    for name, value in (("REVIEWER_TOKEN", "short"), ("RETENTION_DAYS", "-1"),
                        ("STORE_URL", "mysql://db/cds"), ("STORE_URL", "/var/lib/store.sqlite3")):
        with pytest.raises(ConfigurationError, match=name):
            Settings.from_env({**env, f"IVIG_CDS_{name}": value})


def test_default_store_is_a_file_under_the_state_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    app = create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development()))
    assert (tmp_path / "state" / "ivig-cds" / "store.sqlite3").is_file()  # created on first start
    assert cards_of(app.test_client(), gbs_request())
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_store_url() == f"sqlite:///{Path.home() / '.local' / 'state' / 'ivig-cds' / 'store.sqlite3'}"
