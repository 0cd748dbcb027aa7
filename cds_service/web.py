"""The CDS Hooks HTTP endpoints: discovery, service calls, feedback, and the OpenAPI document.

Only the routes: a call's errors are raised as the domain errors of errors.py and answered by http_policy, which also
holds what every endpoint shares (CORS, headers, no token in a URL)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .http_policy import service

bp = Blueprint("cds_hooks", __name__)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return jsonify(service().openapi)


@bp.get("/cds-services")
def discovery() -> Response:
    return jsonify({"services": service().services})


@bp.post("/cds-services/<service_id>")
def call(service_id: str) -> Response:
    return jsonify(service().call(service_id, request.get_data()))


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    """CDS Hooks 2.0 feedback, checked against the cards we returned and stored (see feedback.py)."""
    service().feedback(service_id, request.get_data())
    return jsonify({})
