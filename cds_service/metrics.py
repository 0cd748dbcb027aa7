"""Prometheus metrics of the service, one set per process, and how gunicorn's worker processes share them.

The metrics (all prefixed ``ivig_cds_``):

* ``request_duration_seconds`` histogram, by ``endpoint`` (Flask's name of the route, e.g. ``cds_hooks.call``),
  ``service`` (a CDS service id of ours, or empty) and ``status``;
* ``cards_total`` by ``recommendation`` (the card's source.topic.code) and ``indicator``;
* ``fhir_fallback_queries_total``: searches sent to the EHR's FHIR server for data the call did not prefetch;
  ``fhir_fallback_failures_total`` by ``reason`` (the OperationOutcome issue type the 412 gives: timeout,
  too-costly, forbidden, exception, ...);
* ``jwt_rejections_total`` by ``reason`` (auth.REFUSAL_KINDS).

Every label value comes from a fixed set (our routes, our services, our recommendations, fixed reason words), never
from what a client sent: a client cannot grow the number of series.

Several processes: gunicorn runs the app in worker processes, and a scrape reaches one of them; each would show its
own counts only. prometheus_client's multiprocess mode has each process write its values to files in one folder
and the process that is scraped add them up. ``ivig-cds serve`` makes that folder at each start
(:func:`use_private_folder`): new, empty and readable by the service's user only (a folder kept from an earlier run
would add its old counts, or another user's files, to ours), and removes it when the server stops.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

#: the variable prometheus_client reads to write values to files (multiprocess mode)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: seconds; hook calls answered from prefetch take milliseconds, FHIR fallback up to IVIG_CDS_FHIR_TIMEOUT
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The collectors of this process."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, values

        # prometheus_client chooses between in-memory and file-backed values when it is first imported; choose again
        # now, so that the folder set by use_private_folder() counts even if something imported it earlier.
        values.ValueClass = values.get_value_class()
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram("ivig_cds_request_duration_seconds", "Time to answer a request, by endpoint, "
                                         "CDS service and status", ["endpoint", "service", "status"], buckets=BUCKETS,
                                         registry=self.registry)
        self.cards = Counter("ivig_cds_cards", "Cards returned, by recommendation (source.topic.code) and indicator",
                             ["recommendation", "indicator"], registry=self.registry)
        self.fhir_queries = Counter("ivig_cds_fhir_fallback_queries", "Searches sent to the EHR's FHIR server for data "
                                    "the call did not prefetch", registry=self.registry)
        self.fhir_failures = Counter("ivig_cds_fhir_fallback_failures", "FHIR fallback searches that gave no usable "
                                     "answer, by OperationOutcome issue type", ["reason"], registry=self.registry)
        self.jwt_rejections = Counter("ivig_cds_jwt_rejections", "Calls refused for their JWT (or the replay store), "
                                      "by reason", ["reason"], registry=self.registry)

        # each series' child, looked up once: prometheus_client's labels() checks and locks on every call
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def count_cards(self, cards: list[dict[str, Any]]) -> None:
        for card in cards:
            topic = (card.get("source") or {}).get("topic") or {}
            self._child(self.cards, str(topic.get("code", "")), str(card.get("indicator", ""))).inc()

    def observe_request(self, endpoint: str, service: str, status: str, seconds: float) -> None:
        self._child(self.request_seconds, endpoint, service, status).observe(seconds)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes: every process's values when they are shared through files."""
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        folder = os.environ.get(MULTIPROCESS_ENV)
        if not folder:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)
        return generate_latest(registry)


_lock = threading.Lock()
_current: Metrics | None = None


def current() -> Metrics:
    """This process's metrics, made on first use (after use_private_folder(), when the server calls it)."""
    global _current
    with _lock:
        if _current is None:
            _current = Metrics()
        return _current


def use_private_folder() -> Path:
    """Make a new folder for the worker processes' metric files (mode 0700, in /dev/shm where there is one: the
    files are written on every request) and have this process and its children use it. Call before forking."""
    global _current
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="ivig-cds-metrics-", dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
    os.environ[MULTIPROCESS_ENV] = str(folder)
    with _lock:
        _current = None  # made anew, file-backed
    return folder


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit hook: a dead worker's live gauges no longer count (its counters still do)."""
    from prometheus_client import multiprocess

    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(pid)


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
