"""What the operations team watches: /healthz, /readyz, /metrics, a request id on every answer, and one JSON
access line per request.

* ``GET /healthz``: the process answers (liveness); checks nothing else, so a slow database never gets a healthy
  process restarted.
* ``GET /readyz``: the knowledge is loaded and the card store and the replay store answer now (readiness: a load
  balancer sends calls here only then); 503 naming which one does not.
* Both need no credential and say nothing about any patient: the names of three checks and "ok" or why not.
* ``GET /metrics``: Prometheus's text format (metrics.py). It is served only when IVIG_CDS_METRICS_TOKEN is set,
  and then only to a request carrying that token (``Authorization: Bearer``, which Prometheus sends from its
  ``authorization`` scrape setting); 404 otherwise. Why a token rather than "loopback only": behind a reverse
  proxy on the same host every request comes from loopback, so a loopback rule would serve the metrics to anyone
  the proxy lets in. The metrics hold no patient data, but they show how the service is used (which
  recommendations fire, how often, which clients are refused), which is the hospital's business, not the
  internet's.
* Every answer carries ``X-Request-ID``: the one a trusted proxy sent (forwarded.py), else a new one; the same id
  is in every log line of the request (jsonlog.py).
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from . import metrics
from .auth import JwtVerifier, ReplayStoreUnavailable
from .forwarded import TrustedProxies
from .http_policy import authorized, outcome
from .store import StoreError

log = logging.getLogger(__name__)
access_log = logging.getLogger("cds_service.access")
bp = Blueprint("observability", __name__)

#: where the app keeps what these endpoints need (set by :func:`register`)
EXTENSION = "ivig_cds_observability"


@bp.get("/healthz")
def healthz() -> Response:
    return _no_store(jsonify({"status": "alive"}))


@bp.get("/readyz")
def readyz() -> Response:
    checks = readiness()
    ready = all(state == "ok" for state in checks.values())
    response = jsonify({"status": "ready" if ready else "not ready", "checks": checks})
    response.status_code = 200 if ready else 503
    return _no_store(response)


@bp.get("/metrics")
def metrics_page() -> Response:
    expected = current_app.extensions["ivig_cds"].settings.metrics_token
    if not expected:
        return outcome(404, f"no such page: {request.path}", "not-found")
    if not authorized(expected, request.headers.get("Authorization")):
        log.warning("401 for GET /metrics: no or wrong metrics credential")
        response = outcome(401, "the metrics need the metrics credential (Authorization: Bearer)", "login")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    from prometheus_client import CONTENT_TYPE_LATEST

    return _no_store(Response(metrics.current().exposition(), content_type=CONTENT_TYPE_LATEST))


def readiness() -> dict[str, str]:
    """Each check: "ok", or why not in a few words (the details go to the log, which may name a host)."""
    service = current_app.extensions["ivig_cds"]
    verifier: JwtVerifier = current_app.extensions[EXTENSION]["verifier"]
    checks = {"knowledge": "ok" if service.knowledge.resources else "not loaded"}
    if service.store is None:
        checks["card_store"] = "not configured"
    else:
        try:
            service.store.check_current()
            checks["card_store"] = "ok"
        except StoreError as exc:
            log.warning("not ready: card store: %s", exc)
            checks["card_store"] = "unavailable"
    try:
        verifier.replay_store_ready()
        checks["replay_store"] = "ok"
    except ReplayStoreUnavailable as exc:
        log.warning("not ready: %s", exc.reason)
        checks["replay_store"] = "unavailable"
    return checks


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def register(app: Flask, verifier: JwtVerifier) -> None:
    """The endpoints, and the request id, access line and latency of every request. Call after http_policy.register,
    so that the request id is taken before any other hook can answer."""
    settings = app.extensions["ivig_cds"].settings
    proxies = TrustedProxies(settings.trusted_proxies)
    services = frozenset(s["id"] for s in app.extensions["ivig_cds"].services)
    app.extensions[EXTENSION] = {"verifier": verifier, "proxies": proxies}
    app.register_blueprint(bp)

    def start() -> None:
        g.request_started = time.perf_counter()
        g.request_id = proxies.request_id(request.remote_addr, request.headers.get("X-Request-ID"))

    app.before_request_funcs.setdefault(None, []).insert(0, start)

    @app.after_request
    def finish(response: Response) -> Response:
        request_id = g.get("request_id") or proxies.request_id(None, None)
        response.headers["X-Request-ID"] = request_id
        elapsed = time.perf_counter() - g.get("request_started", time.perf_counter())
        endpoint = request.url_rule.endpoint if request.url_rule is not None else "unmatched"
        service = (request.view_args or {}).get("service_id", "")
        service = service if service in services else ""
        metrics.current().observe_request(endpoint, service, str(response.status_code), elapsed)
        client = proxies.client_address(request.remote_addr, request.headers.get("X-Forwarded-For"))
        access_log.info("%s %s %d", request.method, request.path, response.status_code,
                        extra={"method": request.method, "path": request.path, "status": response.status_code,
                               "duration_ms": round(elapsed * 1000, 2), "client": client,
                               "service": service or None, "endpoint": endpoint, "request_id": request_id})
        return response


def count_jwt_rejection(exc: Exception) -> None:
    """auth.require_jwt's on_refusal: count the refusal by its kind (auth.REFUSAL_KINDS)."""
    metrics.current().jwt_rejections.labels(getattr(exc, "kind", "malformed")).inc()
