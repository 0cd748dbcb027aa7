from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.card_checks", "tests.four_or_five_days", "tests.range_regimen")
# the tiers; the real FHIR server; the stores (SQLite, PostgreSQL, Redis)
pytest_plugins = ["tests.tiers", "tests.fhir_server_fixtures", "tests.store_fixtures", "tests.redis_fixtures"]

from cds_service.app import create_app
from cds_service.auth import AuthSettings
from cds_service.config import Settings
from tests.card_checks import stated_topics
from tests.fhir_data import days_ago, hook_request, ivig_order, prefetch, weight

ROOT = Path(__file__).resolve().parents[1]

# Every app the tests start keeps its cards in a store of this run (the default SQLite file lives under
# $XDG_STATE_HOME), never in the store of the user running the tests; service processes inherit it.
_STATE = tempfile.mkdtemp(prefix="ivig-cds-test-state-")
os.environ["XDG_STATE_HOME"] = _STATE
atexit.register(shutil.rmtree, _STATE, ignore_errors=True)


@pytest.fixture(scope="session")
def app():
    """The service as a developer runs it with the CDS Hooks Sandbox: JWT optional (tests/test_auth_http.py covers
    production), any FHIR server allowed."""
    return create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(), fhir_timeout=2.0))


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def cds(client):
    """POST a request to the service for its hook; return the cards, failing on anything but 200."""

    def call(body: dict) -> list[dict]:
        response = client.post(f"/cds-services/ivig-{body['hook']}", json=body)
        assert response.status_code == 200, response.get_json()
        return response.get_json()["cards"]

    return call


def topics(cards: list[dict]) -> dict[str, dict]:
    """Cards by recommendation code (source.topic.code). A card that decides between recommendations (the record
    cannot tell which applies) states each of them: it is found under each of their codes too."""
    found: dict[str, dict] = {}
    for card in cards:
        found[card["source"]["topic"]["code"]] = card
        for code in stated_topics(card):
            found.setdefault(code, card)
    return found


@pytest.fixture()
def cards_by_topic(cds):
    """Send the selected IVIG draft (or `order`), any `others` drafted with it, and a prefetch built from `data`
    (a 70 kg weight from yesterday unless `weights` is given); return the cards by topic code."""

    def call(*, order: dict | None = None, hook: str = "order-select", others=(), **data) -> dict[str, dict]:
        if "weights" not in data:
            data["weights"] = [weight(70, when=days_ago(1))]
        return topics(cds(hook_request([order or ivig_order(), *others], hook=hook, prefetch=prefetch(**data))))

    return call
