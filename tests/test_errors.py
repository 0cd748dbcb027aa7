"""One error model: the code raises domain errors (errors.py), http_policy alone maps each to its status and
OperationOutcome, and the blueprints share that policy without importing one another."""

from __future__ import annotations

import ast

import pytest

from cds_service.auth import IssuerOverQuota, Unauthorized
from cds_service.errors import RequestError, ServiceError
from cds_service.http_policy import error_response
from cds_service.prefetch import DataUnavailable
from cds_service.recommendation import UnreadableData
from cds_service.store import StoreError
from tests.conftest import ROOT


@pytest.mark.parametrize("error, status, code, headers", [
    (RequestError("context.patientId is required"), 400, "invalid", {}),
    (RequestError("no CDS service with id 'x'", status=404), 404, "not-found", {}),
    (RequestError("too many draft orders", status=413), 413, "too-long", {}),
    (UnreadableData("recommendation GBS-1 cannot be evaluated on this patient's data"), 422, "processing", {}),
    (DataUnavailable({"weight": "not prefetched"}, {"weight": "timeout"}), 412, "timeout", {}),
    (StoreError("database is locked"), 503, "transient", {}),
    (Unauthorized("signature"), 401, "login", {"WWW-Authenticate": "Bearer"}),
    (IssuerOverQuota("quota", retry_after=7), 429, "throttled", {"Retry-After": "7"}),
    (ValueError("a bug"), 500, "exception", {}),
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None)
def test_every_error_has_its_status_and_operation_outcome(app, error, status, code, headers):
    with app.test_request_context("/cds-services/ivig-order-select", method="POST"):
        response = error_response(error)
    body = response.get_json()
    assert response.status_code == status and body["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i["code"]) for i in body["issue"]] == [("error", code)]
    assert all(response.headers.get(name) == value for name, value in headers.items())
    if status == 500:
        assert body["issue"][0]["diagnostics"] == "internal error"  # never the message of a bug


def test_domain_errors_carry_no_http_status():
    """The engine says what went wrong; which status that is, is the HTTP layer's decision."""
    for error in (UnreadableData("x"), DataUnavailable({"weight": "x"}), StoreError("x")):
        assert isinstance(error, ServiceError) and not isinstance(error, RequestError)
        assert not hasattr(error, "status")


def test_blueprints_import_no_other_blueprint():
    """The HTTP policy lives in http_policy; no blueprint module imports another (fhir_api once took its errors from
    the CDS Hooks blueprint)."""
    blueprints = {"web", "fhir_api", "report_api", "observability"}
    for name in blueprints:
        tree = ast.parse((ROOT / "cds_service" / f"{name}.py").read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
                     and node.module is None for alias in node.names}
        assert not imported & blueprints, (name, imported & blueprints)
