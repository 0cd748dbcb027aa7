"""The CDS Hooks HTTP endpoints (discovery, service calls, feedback), and what every endpoint shares:
OperationOutcome errors, CORS, and no 500 with a stack trace."""

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
    origin = app.extensions["ivig_cds"].settings.cors_allow_origin

    @app.after_request
    def cors(response: Response) -> Response:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
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
