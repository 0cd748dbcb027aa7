"""Unit tests of cds_service.protocol.parse_hook_request.

Valid requests are built from the official CDS Hooks Library R4 example contexts, so the parser is
held to what real clients are told to send. REJECTIONS is shared with test_request_validation.py,
which replays the same cases over HTTP.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cds_service.protocol import HookRequest, RequestError, parse_hook_request

EXAMPLES = Path(__file__).parent / "fixtures"
MEDICATION = "MedicationRequest/smart-MedicationRequest-103"
NUTRITION = "NutritionOrder/pureeddiet-simple"
Mutation = Callable[[dict], Any]  # takes a fresh valid request, returns the request to send or raw bytes


def make_request(hook: str) -> dict[str, Any]:
    """A complete, valid request for hook: the library's example context plus hook/hookInstance."""
    example = json.loads((EXAMPLES / f"{hook}.example-R4.context.json").read_text())
    return {"hook": hook, "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", **example}


def parse(hook: str, mutate: Mutation = lambda request: request) -> HookRequest:
    return parse_hook_request(request_body(hook, mutate), hook)


def request_body(hook: str, mutate: Mutation) -> bytes:
    request = mutate(make_request(hook))
    return request if isinstance(request, bytes) else json.dumps(request).encode()


def _walk(request: dict, path: str) -> tuple[Any, str | int]:
    """The container holding the dotted path's last member, and that member's key or index."""
    *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
    node: Any = request
    for part in parents:
        node = node[part]
    return node, last


def _labelled(mutate: Mutation, label: str) -> Mutation:
    """Attach a short description, used as the pytest id of the case."""
    mutate.label = label  # type: ignore[attr-defined]
    return mutate


def put(path: str, value: Any) -> Mutation:
    def mutate(request: dict) -> dict:
        node, key = _walk(request, path)
        node[key] = copy.deepcopy(value)
        return request
    return _labelled(mutate, f"{path}={json.dumps(value)[:40]}")


def drop(path: str) -> Mutation:
    def mutate(request: dict) -> dict:
        node, key = _walk(request, path)
        del node[key]
        return request
    return _labelled(mutate, f"no {path}")


def raw(body: bytes) -> Mutation:
    return _labelled(lambda request: body, f"body {body!r:.40}")


def chain(*mutations: Mutation) -> Mutation:
    def mutate(request: dict) -> Any:
        for mutation in mutations:
            request = mutation(request)
        return request
    return _labelled(mutate, " & ".join(mutation.label for mutation in mutations))  # type: ignore[attr-defined]


FIRST_RESOURCE = "context.draftOrders.entry.0.resource"
AUTH = {"access_token": "some-opaque-token", "token_type": "Bearer", "expires_in": 300,
        "scope": "patient/*.read", "subject": "ivig-cds"}
WITH_SERVER = put("fhirServer", "https://fhir.example.org/r4")
WITH_AUTH = _labelled(chain(WITH_SERVER, put("fhirAuthorization", AUTH)), "with fhirAuthorization")

# (mutation, text the reason must contain: the field at fault) valid for both hooks.
_COMMON = [
    (raw(b"{not json"), "not valid JSON"),
    (raw(b'{"hook": "\xff"}'), "not valid UTF-8"),
    (raw(b'{"hook": NaN}'), "not valid JSON"),
    (raw(b"[]"), "must be a JSON object"),
    (raw(b'{"a": ' * 10_000), "nests arrays and objects more than 64 deep"),
    (drop("hook"), "hook is required"),
    (put("hook", 42), "hook is required"),
    (drop("hookInstance"), "hookInstance"),
    (put("hookInstance", ""), "hookInstance"),
    (drop("context"), "context is required"),
    (put("context", []), "context is required"),
    (drop("context.patientId"), "context.patientId"),
    (put("context.patientId", ""), "context.patientId"),
    (put("context.patientId", 1288992), "context.patientId"),
    (put("context.userId", 123), "context.userId"),
    (put("context.encounterId", ["89284"]), "context.encounterId"),
    (drop("context.draftOrders"), "context.draftOrders"),
    (put("context.draftOrders", "Bundle"), "context.draftOrders"),
    (put("context.draftOrders.resourceType", "Parameters"), "context.draftOrders.resourceType"),
    (put("context.draftOrders.entry", {}), "context.draftOrders.entry"),
    (drop(f"{FIRST_RESOURCE}.resourceType"), "context.draftOrders.entry[0].resource.resourceType"),
    (put(f"{FIRST_RESOURCE}.resourceType", 7), "context.draftOrders.entry[0].resource.resourceType"),
    (put("fhirServer", 42), "fhirServer"),
    (put("fhirServer", "fhir.example.org/r4"), "fhirServer"),
    (put("fhirServer", "ftp://fhir.example.org/r4"), "fhirServer"),
    (chain(WITH_SERVER, put("fhirAuthorization", "Bearer abc")), "fhirAuthorization"),
    (chain(WITH_AUTH, put("fhirAuthorization.access_token", "")), "fhirAuthorization.access_token"),
    (chain(WITH_AUTH, put("fhirAuthorization.access_token", "tok\u0100en")), "fhirAuthorization.access_token"),  # not sendable
    (chain(WITH_AUTH, put("fhirAuthorization.access_token", "a b")), "fhirAuthorization.access_token"),
    (chain(WITH_AUTH, drop("fhirAuthorization.token_type")), "fhirAuthorization.token_type"),
    (chain(WITH_AUTH, put("fhirAuthorization.token_type", "MAC")), "fhirAuthorization.token_type"),
    (chain(WITH_AUTH, put("fhirAuthorization.expires_in", "300")), "fhirAuthorization.expires_in"),
    (_labelled(put("fhirAuthorization", AUTH), "fhirAuthorization without fhirServer"),
     "fhirServer is required when fhirAuthorization is present"),
    (put("prefetch", ["patient"]), "prefetch"),
]
_ORDER_SELECT_ONLY = [
    (put("hook", "order-sign"), "hook: this service answers order-select, not order-sign"),
    (drop("context.selections"), "context.selections"),
    (put("context.selections", MEDICATION), "context.selections"),
    (put("context.selections", [42]), "context.selections[0]"),
    (put("context.selections", ["smart-MedicationRequest-103"]), "context.selections[0]"),
    (put("context.selections", [NUTRITION, "MedicationRequest/nope"]),
     "context.selections[1] 'MedicationRequest/nope' names no resource in context.draftOrders"),
]
_ORDER_SIGN_ONLY = [
    (put("hook", "order-select"), "hook: this service answers order-sign, not order-select"),
]

# (hook, mutation, expected reason fragment), as pytest params with readable ids.
REJECTIONS = [
    pytest.param(hook, mutate, expected, id=f"{hook} {mutate.label}")  # type: ignore[attr-defined]
    for hook, cases in [("order-select", _COMMON + _ORDER_SELECT_ONLY),
                        ("order-sign", _COMMON + _ORDER_SIGN_ONLY)]
    for mutate, expected in cases
]


@pytest.mark.parametrize("hook, mutate, expected", REJECTIONS)
def test_rejects(hook: str, mutate: Mutation, expected: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse(hook, mutate)
    assert caught.value.status == 400
    assert expected in caught.value.reason


def test_order_select_example() -> None:
    request = parse("order-select")
    assert (request.hook, request.hook_instance) == ("order-select", "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea")
    assert request.patient_id == "1288992"
    assert (request.user_id, request.encounter_id) == ("PractitionerRole/123", "89284")
    assert request.selections == (NUTRITION, MEDICATION)
    assert [o["resourceType"] for o in request.draft_orders] == ["NutritionOrder", "MedicationRequest"]
    assert request.selected_orders() == request.draft_orders
    assert (request.fhir_server, request.fhir_authorization, dict(request.prefetch)) == (None, None, {})


def test_order_select_selects_only_named_orders() -> None:
    request = parse("order-select", put("context.selections", [MEDICATION]))
    assert [order["id"] for order in request.selected_orders()] == ["smart-MedicationRequest-103"]
    assert len(request.draft_orders) == 2


def test_order_select_with_empty_selections_selects_nothing() -> None:
    assert parse("order-select", put("context.selections", [])).selected_orders() == ()


def test_order_sign_example_selects_all_orders_and_ignores_selections() -> None:
    request = parse("order-sign", put("context.selections", ["not/even-checked", 42]))
    assert request.selections == ()
    assert request.selected_orders() == request.draft_orders
    assert len(request.draft_orders) == 2


def test_sandbox_style_draft_orders_parse() -> None:
    """The Sandbox sends Bundles without type and drafts that are not valid FHIR; we must still advise."""
    order = {"resourceType": "MedicationRequest", "id": "request-123", "status": "draft",
             "category": {"coding": [{"code": "inpatient"}]}, "subject": {"reference": "Patient/1288992"}}
    bundle = {"resourceType": "Bundle", "entry": [{"resource": order}, {"fullUrl": "urn:uuid:x"}]}
    request = parse("order-select", chain(put("context.draftOrders", bundle),
                                         put("context.selections", ["MedicationRequest/request-123"])))
    assert request.selected_orders() == (order,)


def test_prefetch_keeps_null_and_absent_keys_apart() -> None:
    patient = {"resourceType": "Patient", "id": "1288992"}
    request = parse("order-sign", put("prefetch", {"patient": patient, "weight": None}))
    assert request.prefetch["patient"] == patient
    assert "weight" in request.prefetch and request.prefetch["weight"] is None
    assert "conditions" not in request.prefetch


def test_fhir_server_and_authorization() -> None:
    request = parse("order-sign", chain(put("fhirServer", "https://fhir.example.org/r4/"),
                                       put("fhirAuthorization", {**AUTH, "token_type": "bearer"})))
    assert request.fhir_server == "https://fhir.example.org/r4"
    auth = request.fhir_authorization
    assert auth is not None
    assert (auth.access_token, auth.token_type, auth.expires_in) == ("some-opaque-token", "Bearer", 300)
    assert (auth.scope, auth.subject) == ("patient/*.read", "ivig-cds")
    assert "some-opaque-token" not in repr(request)


def test_unknown_members_and_null_optionals_are_ignored() -> None:
    request = parse("order-sign", chain(put("extension", {"com.example.x": 1}), put("fhirServer", None),
                                       put("context.encounterId", None), put("context.extra", [1])))
    assert (request.fhir_server, request.encounter_id) == (None, None)


def test_context_value_serves_prefetch_tokens() -> None:
    request = parse("order-sign", drop("context.encounterId"))
    assert request.context_value("patientId") == "1288992"
    assert request.context_value("userId") == "PractitionerRole/123"
    assert request.context_value("encounterId") is None
    assert request.context_value("draftOrders") is None
