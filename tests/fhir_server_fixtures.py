"""Fixtures and helpers for the tests against the real FHIR server (tests/medplum.py, tests/fhir_server/server.mjs).

Import the fixtures into a test module (``from tests.fhir_server_fixtures import fhir, fhir_server``):
``fhir_server`` starts ONE server per test module (with ``require_token=FHIR_TOKEN`` when the module
defines that constant); ``fhir`` hands the same server to each test after ``control(reset=True)``
(no rules, no data, an empty request log, the token back to the module's).
"""
from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Iterator
from urllib.parse import unquote

import pytest

from cds_service import export, search_plan
from tests.fhir_data import PATIENT_ID
from tests.medplum import FhirServer, running_fhir_server

#: Medplum's FhirRouter refuses a transaction with more than 50 update (PUT) entries.
MEDPLUM_MAX_TRANSACTION_UPDATES = 50


@pytest.fixture(scope="module")
def fhir_server(request: pytest.FixtureRequest) -> Iterator[FhirServer]:
    with running_fhir_server(require_token=getattr(request.module, "FHIR_TOKEN", None)) as server:
        yield server


@pytest.fixture()
def fhir(fhir_server: FhirServer) -> FhirServer:
    fhir_server.control(reset=True)
    return fhir_server


def entry_statuses(response_bundle: dict) -> list[str]:
    """The HTTP status code of each entry of a transaction/batch response ("200 OK" -> "200")."""
    return [str(e.get("response", {}).get("status", "")).split(" ")[0] for e in response_bundle.get("entry", [])]


def load(server: FhirServer, resources: Iterable[dict]) -> None:
    """Store resources with PUT transactions of at most 50 entries each; every entry must answer 200/201."""
    for part in export.split_transaction(export.put_transaction(resources), MEDPLUM_MAX_TRANSACTION_UPDATES):
        statuses = entry_statuses(server.transaction(part))
        assert len(statuses) == len(part["entry"]) and set(statuses) <= {"200", "201"}, statuses


def rendered(templates: dict[str, str], keys: Iterable[str] | None = None) -> dict[str, str]:
    """Prefetch key -> the query the service sends for PATIENT_ID (percent-decoded, like log_targets)."""
    return {key: unquote(templates[key].replace("{{context.patientId}}", PATIENT_ID))
            for key in (templates if keys is None else keys)}


def planned(templates: dict[str, str], keys: Iterable[str] | None = None) -> list[str]:
    """The queries the service sends for these keys of PATIENT_ID (search_plan merges Observation searches),
    percent-decoded like log_targets."""
    return [unquote(search.url) for search in search_plan.plan(rendered(templates, keys))]


def log_targets(entries: Iterable[dict]) -> list[str]:
    """The targets (relative to the base) of request-log entries, percent-decoded."""
    return [unquote(e["target"]) for e in entries]


def closed_port_base() -> str:
    """A FHIR base on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/fhir/R4"


def essence(cards: list[dict]) -> list[tuple]:
    """What a clinician sees, without the per-response uuids: summary, indicator, detail, suggestion labels."""
    return [(c["summary"], c["indicator"], c.get("detail"), [s["label"] for s in c.get("suggestions", [])]) for c in cards]


_FAILED_KEY = re.compile(r"^prefetch key '([^']+)'")


def failed_keys(outcome: dict) -> set[str]:
    """The prefetch keys a 412 OperationOutcome names (one issue per key)."""
    keys = set()
    for issue in outcome.get("issue", []):
        match = _FAILED_KEY.match(issue.get("diagnostics", ""))
        assert match, f"issue does not name a prefetch key: {issue}"
        keys.add(match.group(1))
    return keys
