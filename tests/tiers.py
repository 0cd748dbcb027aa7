"""The two test tiers: `fast` (the default selection of `pytest -m fast`) and `integration`.

A test is `integration` when it needs something outside this Python process: a subprocess (gunicorn, node, nginx,
npm, a browser, Docker), a server (the FHIR servers, a stub on loopback, PostgreSQL, Redis) or an install. Every other
test is `fast`. The split is made here, in one place, from the fixtures a test uses and the modules whose tests start
such things themselves, so that a test file need not say which tier it is in.

The split is enforced, not trusted: while a `fast` test runs, its thread may not start a process or open a network
connection (a Python audit hook refuses it), so a test that needs one and is not listed here fails with the reason
instead of silently slowing the fast tier down. Add its module to INTEGRATION_MODULES, or its fixture to
INTEGRATION_FIXTURES.
"""

from __future__ import annotations

import socket
import sys
import threading

import pytest

#: fixtures that start a process or a server, connect to one, or make a database (the card store on SQLite or PostgreSQL,
#: created and migrated for each test)
INTEGRATION_FIXTURES = frozenset({"fhir_server", "fhir", "postgres_url", "store_url", "redis_url", "own_redis", "redis_prefix"})
#: modules whose tests start processes or servers themselves (subprocess, stub servers on loopback, a browser)
INTEGRATION_MODULES = frozenset({
    "test_behind_proxy", "test_cli", "test_container", "test_end_to_end", "test_fhir_server_fallback",
    "test_feedback_store", "test_fhir_server_import", "test_fhir_validation", "test_fuzz", "test_observability", "test_outbound_safety",
    "test_patient_data", "test_replay_stores", "test_report", "test_second_opinion", "test_several_hosts",
    "test_slow_clients", "test_store_migrations",
    # reads the whole ICD-10-CM and WHO ICD-10 classifications from their installed data packages (about 6 s)
    "test_terminology_codes",
})
#: audit events a fast test's thread may not raise
_REFUSED_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.fork", "os.exec", "socket.connect", "socket.bind"})

_guarded = threading.local()


def needs_outside(item: pytest.Item) -> bool:
    """Integration by its own marker (a test in a fast module that starts something), its module or its fixtures."""
    if item.get_closest_marker("integration") is not None:
        return True
    module = item.module.__name__.rpartition(".")[2] if getattr(item, "module", None) else ""
    return bool(module in INTEGRATION_MODULES or INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fast: needs nothing outside the Python process (run alone with -m fast)")
    config.addinivalue_line("markers", "integration: needs a subprocess, a server, a browser, a database server or an install")
    sys.addaudithook(_refuse_outside)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration if needs_outside(item) else pytest.mark.fast)


def _refuse_outside(event: str, args: tuple) -> None:
    if not getattr(_guarded, "on", False) or event not in _REFUSED_EVENTS:
        return
    if event.startswith("socket.") and args and getattr(args[0], "family", None) == socket.AF_UNIX:
        return
    _guarded.on = False  # report once; the failing test's own teardown may need the network no more than this
    raise RuntimeError(f"a fast test did {event} {args[1:]!r}: mark it integration in tests/tiers.py")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    _guarded.on = item.get_closest_marker("fast") is not None
    try:
        return (yield)
    finally:
        _guarded.on = False
