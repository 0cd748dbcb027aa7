"""Bad requests through HTTP: every rejection of the parser must reach the client as a 400
OperationOutcome whose diagnostics name the field at fault.

Uses the `client` fixture (a Flask test client) from tests/conftest.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_protocol import REJECTIONS, Mutation, make_request, request_body

ENDPOINTS = {"order-select": "/cds-services/ivig-order-select",
             "order-sign": "/cds-services/ivig-order-sign"}


def assert_operation_outcome(response: Any, status: int) -> str:
    """Check status and OperationOutcome shape; return issue[0].diagnostics."""
    assert response.status_code == status
    assert response.is_json
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize("hook, mutate, expected", REJECTIONS)
def test_rejected_with_operation_outcome(client: Any, hook: str, mutate: Mutation, expected: str) -> None:
    response = client.post(ENDPOINTS[hook], data=request_body(hook, mutate),
                           content_type="application/json")
    assert expected in assert_operation_outcome(response, 400)


def test_unknown_service_is_404_with_operation_outcome(client: Any) -> None:
    response = client.post("/cds-services/unknown-service", json=make_request("order-select"))
    assert_operation_outcome(response, 404)
