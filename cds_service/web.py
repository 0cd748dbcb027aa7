"""The CDS Hooks HTTP endpoints (discovery, service calls, feedback), and what every endpoint shares:
OperationOutcome errors, CORS, security headers, no token in a URL, and no 500 with a stack trace."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from .prefetch import DataUnavailable
from .protocol import RequestError
from .service import CdsService
from .store import StoreError

log = logging.getLogger(__name__)
bp = Blueprint("cds_hooks", __name__)


def operation_outcome(status: int, diagnostics: str, code: str = "invalid") -> Response:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}
    response = jsonify(body)
    response.status_code = status
    return response


def service() -> CdsService:
    return current_app.extensions["ivig_cds"]


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return jsonify(service().openapi)


@bp.get("/cds-services")
def discovery() -> Response:
    return jsonify({"services": service().services})


@bp.post("/cds-services/<service_id>")
def call(service_id: str) -> Response:
    try:
        return jsonify(service().call(service_id, request.get_data()))
    except RequestError as exc:
        return operation_outcome(exc.status, exc.reason, exc.issue_code)
    except DataUnavailable as exc:
        response = jsonify(exc.operation_outcome())
        response.status_code = 412
        return response


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    """CDS Hooks 2.0 feedback, checked against the cards we returned and stored (see feedback.py)."""
    try:
        service().feedback(service_id, request.get_data())
    except RequestError as exc:
        return operation_outcome(exc.status, exc.reason, exc.issue_code)
    except StoreError as exc:
        log.error("feedback not stored: %s", exc)
        return operation_outcome(503, "the feedback store is unavailable; send the feedback again later", "transient")
    return jsonify({})


def register(app: Flask) -> None:
    """The CDS Hooks blueprint and the handlers every blueprint shares."""
    app.register_blueprint(bp)
    settings = app.extensions["ivig_cds"].settings
    origin = settings.cors_allow_origin
    https = (settings.public_url or "").startswith("https://")

    def no_token_in_the_url() -> Response | None:
        """A token in a URL ends up in logs, proxies and browser histories: refuse it, and say where it goes.
        Runs before the JWT check, so that the client learns why."""
        if any(name.lower() == "access_token" for name in request.args):
            return operation_outcome(400, "a token is never accepted in the URL (access_token); send the JWT in the "
                                          "Authorization header as 'Bearer <token>'", "security")
        return None

    app.before_request_funcs.setdefault(None, []).insert(0, no_token_in_the_url)

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.method == "POST":  # hook calls and $apply answer about a patient: no cache may keep them
            response.headers["Cache-Control"] = "no-store"
        if https:  # only where the configured public URL says TLS is used (it ends at the proxy in front)
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = operation_outcome(exc.code or 500, exc.description or exc.name, "not-found" if exc.code == 404 else "processing")
        for name, value in exc.get_headers():  # e.g. Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return operation_outcome(500, "internal error", "exception")
