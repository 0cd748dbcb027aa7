"""Bad requests through HTTP: every rejection of the parser must reach the client as a 400
OperationOutcome whose diagnostics name the field at fault.

Uses the `client` fixture (a Flask test client) from tests/conftest.py.
"""

from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, example, given, settings

from cds_service.app import create_app
from cds_service.auth import AuthSettings
from cds_service.config import RequestLimits, Settings
from cds_service.protocol import _deeper_than
from tests.conftest import ROOT
from tests.fhir_data import bundle, gbs, hook_request, ivig_order, patient, prefetch, weight
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


# --- limits: every request bounded, depth a 400 with the reason on every endpoint that reads JSON -------------------

LIMITS = RequestLimits()
SELECT = ENDPOINTS["order-select"]


def nested_in(resource: dict, depth: int) -> dict:
    """The resource with an extension holding ``depth`` levels of arrays and objects (an extension in an extension...)."""
    innermost: dict = {"url": "http://example.org/leaf", "valueString": "x"}
    node = innermost
    for _ in range(depth // 2):
        node = {"url": "http://example.org/nested", "extension": [node]}
    return {**resource, "extension": [node]}


def depth_of(value: Any) -> int:
    """Arrays and objects, counted as the service counts them."""
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


#: strings made of what could fool a depth count: quotes, backslashes, brackets, escapes, non-ASCII
TRICKY_TEXT = st.text(st.sampled_from('"\\[]{}/ubn é\u2028\U0001f600\x00\n'), max_size=8)
JSON_TREES = st.recursive(
    TRICKY_TEXT | st.integers() | st.none() | st.booleans(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY_TEXT, inner, max_size=3),
    max_leaves=40,
)


@st.composite
def nested(draw: st.DrawFn) -> Any:
    """A tree with a branch of up to 80 arrays and objects, the keys and leaves tricky text."""
    value = draw(JSON_TREES)
    for _ in range(draw(st.integers(0, 80))):
        value = [draw(TRICKY_TEXT), value] if draw(st.booleans()) else {draw(TRICKY_TEXT): value}
    return value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=nested(), ascii_only=st.booleans(), indent=st.sampled_from([None, 0, 2]), limit=st.integers(1, 70))
@example(value=["\\\"[", {"]\\": [["\\"]]}], ascii_only=True, indent=None, limit=2)
def test_the_depth_check_counts_as_the_parsed_value_nests(value: Any, ascii_only: bool, indent: int | None, limit: int) -> None:
    """Brackets and escapes inside strings never count, however the JSON text is written."""
    body = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    assert _deeper_than(body, limit) is (depth_of(value) > limit)


def apply_body(*resources: dict, draft: dict | None = None) -> dict:
    params = [{"name": "subject", "valueString": "Patient/pat-1"}, {"name": "data", "resource": bundle(list(resources))}]
    if draft is not None:
        params.append({"name": "draftOrder", "resource": draft})
    return {"resourceType": "Parameters", "parameter": params}


def deepest_accepted_and_first_refused(make: Any) -> tuple[dict, dict]:
    """Two bodies made by ``make(depth)``: the deepest within the limit, and one level deeper."""
    bodies = {depth_of(body): body for body in (make(n) for n in range(LIMITS.max_json_depth - 30, LIMITS.max_json_depth))}
    return bodies[max(d for d in bodies if d <= LIMITS.max_json_depth)], bodies[min(d for d in bodies if d > LIMITS.max_json_depth)]


@pytest.mark.parametrize("endpoint", ["hook", "feedback", "apply"])
def test_nesting_deeper_than_the_limit_is_a_400_with_the_reason_on_every_endpoint(client: Any, endpoint: str) -> None:
    if endpoint == "hook":
        def make(n: int) -> dict:
            return hook_request([nested_in(ivig_order(), n)], prefetch=prefetch(conditions=[gbs()], weights=[weight(70)]))
        path, ok = SELECT, 200
    elif endpoint == "feedback":  # feedback on a card the service returned (an unknown card is refused)
        shown = client.post(SELECT, json=hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=[weight(70)])))
        card = shown.get_json()["cards"][0]["uuid"]

        def make(n: int) -> dict:
            return {"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z",
                                  "extension": nested_in({}, n)}]}
        path, ok = SELECT + "/feedback", 200
    else:
        def make(n: int) -> dict:
            return apply_body(nested_in(patient(), n), gbs(), weight(70))
        path, ok = "/fhir/PlanDefinition/efns-ivig-gbs/$apply", 200
    within, beyond = deepest_accepted_and_first_refused(make)
    assert client.post(path, json=within).status_code == ok
    diagnostics = assert_operation_outcome(client.post(path, json=beyond), 400)
    assert f"more than {LIMITS.max_json_depth} deep" in diagnostics


@pytest.mark.parametrize("levels", [800, 960, 5000])
def test_the_red_team_depths_inside_a_draft_order_are_a_400_not_a_500(client: Any, levels: int) -> None:
    text = json.dumps(hook_request([ivig_order()], hook="order-sign"))
    order = json.dumps(ivig_order())
    deep_order = order[:-1] + ', "note": ' + "[" * levels + "]" * levels + "}"
    body = text.replace(order, deep_order, 1)
    assert deep_order in body
    for path in (ENDPOINTS["order-sign"], ENDPOINTS["order-sign"] + "/feedback", "/fhir/PlanDefinition/efns-ivig-gbs/$apply"):
        assert "deep" in assert_operation_outcome(client.post(path, data=body, content_type="application/json"), 400)


def test_draft_orders_over_the_limit_are_refused_with_the_reason(client: Any) -> None:
    orders = [ivig_order(id=f"ivig-{i}") for i in range(LIMITS.max_draft_orders)]
    data = prefetch(conditions=[gbs()], weights=[weight(70)])
    assert client.post(ENDPOINTS["order-sign"], json=hook_request(orders, hook="order-sign", prefetch=data)).status_code == 200
    many = hook_request(orders + [ivig_order(id="one-more")], hook="order-sign", prefetch=data)
    diagnostics = assert_operation_outcome(client.post(ENDPOINTS["order-sign"], json=many), 413)
    assert f"context.draftOrders has {LIMITS.max_draft_orders + 1} entries" in diagnostics


def test_prefetch_and_apply_data_over_the_entry_limit_are_refused_with_the_reason() -> None:
    """With the limit set low (the default, 10,000, is near what the body limit lets in anyway)."""
    limits = RequestLimits(max_bundle_entries=20)
    client = create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development(), limits=limits)).test_client()
    weights = [weight(70) for _ in range(19)]
    assert client.post(SELECT, json=hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=weights))).status_code == 200
    body = hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=weights + [weight(71)]))
    reason = assert_operation_outcome(client.post(SELECT, json=body), 413)
    assert "the prefetch Bundles hold 21 entries; this service reads at most 20" in reason
    apply = "/fhir/PlanDefinition/efns-ivig-gbs/$apply"
    assert client.post(apply, json=apply_body(gbs(), *weights)).status_code == 200
    response = client.post(apply, json=apply_body(gbs(), weight(71), *weights))
    assert "the 'data' Bundles hold 21 entries" in assert_operation_outcome(response, 413)


@pytest.mark.parametrize("body", [b"{", b"[1, 2", b'{"feedback": NaN}', b"\xff"])
def test_feedback_and_apply_say_why_a_body_is_not_json(client: Any, body: bytes) -> None:
    for path in (SELECT + "/feedback", "/fhir/PlanDefinition/efns-ivig-gbs/$apply"):
        diagnostics = assert_operation_outcome(client.post(path, data=body, content_type="application/json"), 400)
        assert "not valid" in diagnostics
