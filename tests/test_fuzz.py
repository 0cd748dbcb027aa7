"""Bad input never breaks the service: no 5xx for any input, and every answer is the documented one.

Three layers, all bounded so the module runs in well under a minute:

* schemathesis drives every operation of our own OpenAPI document (cds_service/openapi.py, served here at
  GET /openapi.json on a test-local app) through WSGI, with schema-conforming requests and with requests
  mutated beyond the schema (generation modes positive + negative; examples, coverage and fuzzing phases),
  checking: no 5xx, a documented status code, a body matching the documented schema, a documented
  content type;
* hypothesis property tests of ``cds_service.protocol.parse_hook_request``: arbitrary bytes, arbitrary
  JSON values, and arbitrary mutations of a valid request (drop any member, replace any value with any
  JSON value) either parse to a HookRequest or raise ``RequestError`` with status 400, nothing else;
* the same mutations POSTed to the app: never a 5xx; a 200 always carries a ``cards`` list, and every
  answer conforms to the OpenAPI document.

The apps here run in development mode (no JWT needed), but may call no FHIR server except a loopback stub
and fetch no ``jku``: generated ``fhirServer`` URLs and JWT headers must never turn into outbound traffic.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, example, given, note, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from cds_service.app import create_app
from cds_service.auth import SANDBOX_JKU, SANDBOX_JWKS, AuthSettings
from cds_service.config import Settings
from cds_service.openapi import document
from cds_service.protocol import HookRequest, RequestError, parse_hook_request
from tests.fhir_data import (
    ATC,
    ICD10CM,
    LOINC,
    administration,
    condition,
    days_ago,
    earlier_ivig_course,
    gbs,
    hook_request,
    ivig_order,
    medication_request,
    observation,
    prefetch,
    procedure,
    service_request,
    weight,
)
from tests.fhir_stub_server import FhirStub

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ("order-select", "order-sign")
#: a loopback address where nothing is served: the only FHIR server the schemathesis app may call
UNSERVED_FHIR = "http://127.0.0.1:9/fhir"

# Hypothesis budgets (examples per test); the whole module stays well under a minute on a 2-core machine.
SCHEMATHESIS_EXAMPLES = 50
PARSER_EXAMPLES = 300
HTTP_EXAMPLES = 120


def fuzz_app(fhir_server: str) -> Flask:
    """The service as create_app builds it in development mode, with two fences for fuzzing: only
    ``fhir_server`` may be called with a client's token, and no jku URL may be fetched."""
    auth = dataclasses.replace(AuthSettings.development(), jku_allowlist=frozenset())
    settings_ = Settings(knowledge_root=ROOT, mode="development", auth=auth, fhir_servers=(fhir_server,),
                         fhir_timeout=1.0)
    return create_app(settings_)


# ---- the OpenAPI document itself ----------------------------------------------------------------------

APP = fuzz_app(UNSERVED_FHIR)
SCHEMA = schemathesis.openapi.from_wsgi("/openapi.json", APP)
# schemathesis leaves out the operation that served the schema unless a filter names it: name them all.
SCHEMA = SCHEMA.include(path=["/cds-services", "/cds-services/{id}", "/cds-services/{id}/feedback", "/openapi.json",
                              "/fhir/PlanDefinition/{planId}/$apply", "/fhir/metadata", "/fhir/{resourceType}/{id}",
                              "/healthz", "/readyz", "/metrics", "/report"])
SCHEMA.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                max_examples=SCHEMATHESIS_EXAMPLES)
SCHEMA.config.phases.update(phases=["examples", "coverage", "fuzzing"])


def test_document_is_valid_openapi_and_matches_discovery() -> None:
    client = APP.test_client()
    served = client.get("/openapi.json").get_json()
    services = client.get("/cds-services").get_json()["services"]
    SCHEMA.validate()  # the OpenAPI 3.0 meta-schema
    assert served["openapi"] == "3.0.3"
    plan_ids = served["paths"]["/fhir/PlanDefinition/{planId}/$apply"]["post"]["parameters"][0]["schema"]["enum"]
    assert "efns-ivig-gbs" in plan_ids
    assert served == document(services, jwt_required=False, plan_ids=plan_ids)
    parameter = served["paths"]["/cds-services/{id}"]["post"]["parameters"][0]
    assert parameter["schema"]["enum"] == [s["id"] for s in services] == ["ivig-order-select", "ivig-order-sign"]
    assert served["components"]["schemas"]["CdsRequest"]["properties"]["hook"]["enum"] == list(HOOKS)
    assert {op for path in served["paths"].values() for op in path} == {"get", "post"}
    # production (the default) requires the JWT; development mode also accepts no credentials at all
    assert document(services)["security"] == [{"cdsClientJwt": []}]
    assert served["security"] == [{"cdsClientJwt": []}, {}]


def test_document_without_services_has_no_empty_enums() -> None:
    doc = document([])
    schemathesis.openapi.from_dict(doc).validate()
    assert "enum" not in doc["paths"]["/cds-services/{id}"]["post"]["parameters"][0]["schema"]


def test_discovery_and_a_real_card_answer_conform_to_the_document() -> None:
    """A request that yields cards (with suggestions, override reasons, links) matches the Card schemas."""
    client = APP.test_client()
    SCHEMA["/cds-services"]["GET"].validate_response(client.get("/cds-services"))
    for hook in HOOKS:
        response = client.post(f"/cds-services/ivig-{hook}", json=valid_request(hook))
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["cards"], "the base request should produce cards"
        SCHEMA["/cds-services/{id}"]["POST"].validate_response(response)


# ---- schemathesis: every operation, positive and negative ------------------------------------------------


@SCHEMA.parametrize()
@settings(max_examples=SCHEMATHESIS_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_5xx_and_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, response_schema_conformance,
                                   content_type_conformance])


# ---- hypothesis strategies ----------------------------------------------------------------------------

#: member names the parser and the engine look up, so generated objects hit real code paths
KNOWN_KEYS = ("hook", "hookInstance", "fhirServer", "fhirAuthorization", "context", "prefetch", "patientId",
              "userId", "encounterId", "selections", "draftOrders", "resourceType", "entry", "resource", "id",
              "access_token", "token_type", "expires_in", "scope", "subject", "status", "code", "coding",
              "system", "valueQuantity", "value", "unit", "effectiveDateTime", "dosageInstruction")
SPECIAL_VALUES = st.sampled_from([
    None, True, False, 0, -1, 2**63, -(2**63) - 1, 10**400, 1e308, -0.0, 0.5, "", " ", "\x00", "\ud7ff\ue000",
    "null", "Bundle", "Patient", "MedicationRequest", "order-select", "order-sign", "Bearer",
    "MedicationRequest/ivig-1", "http://", "https://[::1", "http://127.0.0.1:9/fhir", "2024-02-30", "9999-12-31",
    "0000-00-00T25:61:61Z", "J06BA02", "http://www.whocc.no/atc", [], {}, [None], {"resourceType": None},
]).map(copy.deepcopy)  # a fresh copy each time: mutations write into drawn values, and a shared {} would grow into itself
JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=20) | SPECIAL_VALUES)
JSON_KEYS = st.sampled_from(KNOWN_KEYS) | st.text(max_size=12)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(JSON_KEYS, children, max_size=4),
    max_leaves=20,
)

Path_ = tuple[str | int, ...]


def valid_request(hook: str, fhir_server: str = UNSERVED_FHIR) -> dict[str, Any]:
    """A request the service answers with cards: a selected, dosed IVIG draft for a patient with GBS, every
    prefetch key filled, plus fhirServer/fhirAuthorization so dropped prefetch keys are fetched from it.
    The same one on every call (a fresh copy), so hypothesis can replay and shrink what it found."""
    return copy.deepcopy(_valid_request(hook, fhir_server))


@functools.cache
def _valid_request(hook: str, fhir_server: str) -> dict[str, Any]:
    data = prefetch(
        conditions=[gbs(onset=days_ago(5)), condition("N18.4", display="Chronic kidney disease, stage 4")],
        weights=[weight(70, when=days_ago(1))],
        labs=[observation("98979-8", 25, "mL/min/{1.73_m2}", low=60, display="eGFR"),
              observation("2160-0", 2.4, "mg/dL", low=0.6, high=1.2, display="Creatinine")],
        medications=[earlier_ivig_course(days_before=40), medication_request("B01AA03", display="warfarin")],
        administrations=[administration(when=days_ago(40))],
        procedures=[procedure("20720000", performed=days_ago(2))],
        service_requests=[service_request("399208008")],
    )
    orders = [ivig_order(daily_g=40, days=3), medication_request("N02BE01", display="paracetamol", status="draft")]
    return hook_request(
        orders, hook=hook, prefetch=data, encounterId="enc-1", fhirServer=fhir_server,
        fhirAuthorization={"access_token": "opaque-token", "token_type": "Bearer", "expires_in": 300,
                           "scope": "patient/*.read", "subject": "ivig-cds"},
    )


def _paths(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every member and array element under node, outermost first."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


@st.composite
def mutated_requests(draw: st.DrawFn, hook: str, fhir_server: str = UNSERVED_FHIR) -> dict[str, Any]:
    """A valid request for hook with one to three mutations, each dropping a member (or array element),
    replacing any value with any JSON value, or adding a member with any JSON value."""
    request = valid_request(hook, fhir_server)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([(), *_paths(request)]))
        node = request
        for key in path[:-1]:
            node = node[key]
        kind = draw(st.sampled_from(["drop", "replace", "add"] if path else ["add"]))
        target = node[path[-1]] if path else request
        if kind == "add" and isinstance(target, dict):
            target[draw(JSON_KEYS)] = draw(JSON_VALUES)
        elif kind == "drop":
            del node[path[-1]]
        elif path:
            node[path[-1]] = draw(JSON_VALUES)
        note(f"{kind} {'.'.join(map(str, path)) or '<root>'}")
    return request


def parses_or_refuses(body: bytes | str, hook: str) -> HookRequest | None:
    """The parser's contract: a HookRequest, or RequestError(400); any other exception fails the test."""
    try:
        parsed = parse_hook_request(body, hook)
    except RequestError as error:
        assert error.status == 400, error.status
        assert isinstance(error.reason, str) and error.reason
        return None
    assert isinstance(parsed, HookRequest)
    assert parsed.hook == hook and parsed.hook_instance and parsed.patient_id
    assert all(isinstance(order, dict) and isinstance(order["resourceType"], str) for order in parsed.draft_orders)
    # what the service does next with every parsed request must not blow up either
    parsed.selected_orders()
    for name in ("patientId", "userId", "encounterId"):
        parsed.context_value(name)
    return parsed


# ---- hypothesis: the request parser -------------------------------------------------------------------

PARSER = settings(max_examples=PARSER_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PARSER
@given(body=st.binary(max_size=200), hook=st.sampled_from(HOOKS))
@example(body=b"\xff\xfe", hook="order-select")
@example(body=b'{"hook": NaN}', hook="order-select")
@example(body=b"[" * 100_000, hook="order-sign")
@example(body=b'{"a": ' * 100_000, hook="order-sign")
@example(body=b'"\\ud800"', hook="order-select")
@example(body=b'{"hook": "order-sign", "hook": "order-select"}', hook="order-select")
def test_parser_on_arbitrary_bytes(body: bytes, hook: str) -> None:
    parses_or_refuses(body, hook)


@PARSER
@given(body=st.text(max_size=200), hook=st.sampled_from(HOOKS))
def test_parser_on_arbitrary_text(body: str, hook: str) -> None:
    parses_or_refuses(body, hook)


@PARSER
@given(value=JSON_VALUES, hook=st.sampled_from(HOOKS))
def test_parser_on_arbitrary_json(value: Any, hook: str) -> None:
    parses_or_refuses(json.dumps(value).encode(), hook)


@PARSER
@given(data=st.data(), hook=st.sampled_from(HOOKS))
def test_parser_on_mutated_requests(data: st.DataObject, hook: str) -> None:
    request = data.draw(mutated_requests(hook))
    parses_or_refuses(json.dumps(request).encode(), hook)


def test_parser_accepts_the_unmutated_requests() -> None:
    for hook in HOOKS:
        parsed = parses_or_refuses(json.dumps(valid_request(hook)).encode(), hook)
        assert parsed is not None and parsed.selected_orders()


# ---- hypothesis: the same mutations through HTTP ---------------------------------------------------------


@pytest.fixture(scope="module")
def fhir_stub() -> Iterator[FhirStub]:
    """A loopback FHIR server with no data (every read answers 404 OperationOutcome), so a request whose
    mutated prefetch makes the service fetch from fhirServer exercises the FHIR client, off this machine never."""
    with FhirStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def stub_app(fhir_stub: FhirStub) -> Flask:
    return fuzz_app(fhir_stub.base_url)


def assert_documented_answer(response: Any, body: bytes) -> None:
    """No 5xx; 200 with a cards list, or a 400/412/422 OperationOutcome; conforming to the OpenAPI document."""
    assert response.status_code < 500, f"{response.status_code} for {body[:2000]!r}"
    assert response.status_code in (200, 400, 412, 422), response.status_code
    payload = response.get_json()
    if response.status_code == 200:
        assert isinstance(payload, dict) and isinstance(payload.get("cards"), list)
    else:
        assert payload["resourceType"] == "OperationOutcome"
    SCHEMA["/cds-services/{id}"]["POST"].validate_response(response)


@settings(max_examples=HTTP_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), hook=st.sampled_from(HOOKS))
def test_http_mutated_requests_never_5xx(stub_app: Flask, fhir_stub: FhirStub, data: st.DataObject, hook: str) -> None:
    body = json.dumps(data.draw(mutated_requests(hook, fhir_stub.base_url))).encode()
    response = stub_app.test_client().post(f"/cds-services/ivig-{hook}", data=body, content_type="application/json")
    note(f"response: {response.status_code} {response.get_data(as_text=True)[:2000]}")
    assert_documented_answer(response, body)


@settings(max_examples=HTTP_EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=200) | JSON_VALUES.map(lambda v: json.dumps(v).encode()), hook=st.sampled_from(HOOKS))
def test_http_arbitrary_bodies_never_5xx(stub_app: Flask, body: bytes, hook: str) -> None:
    response = stub_app.test_client().post(f"/cds-services/ivig-{hook}", data=body, content_type="application/json")
    note(f"response: {response.status_code} {response.get_data(as_text=True)[:2000]}")
    assert_documented_answer(response, body)


def test_http_unmutated_requests_fetch_dropped_prefetch_from_the_stub(stub_app: Flask, fhir_stub: FhirStub) -> None:
    """The mutation test only reaches the FHIR client if the base request can: a dropped key is fetched."""
    request = valid_request("order-select", fhir_stub.base_url)
    del request["prefetch"]["weight"]
    before = len(fhir_stub.requests)
    response = stub_app.test_client().post("/cds-services/ivig-order-select", json=request)
    assert len(fhir_stub.requests) > before
    assert_documented_answer(response, json.dumps(request).encode())


# ---- hypothesis: the Authorization header --------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


SANDBOX_KID = SANDBOX_JWKS["keys"][0]["kid"]
JWT_HEADERS = st.fixed_dictionaries(
    {"alg": st.sampled_from(["ES384", "RS384", "none", "HS256", "ES256"]),
     "kid": st.sampled_from([SANDBOX_KID, "unknown-kid"]) | JSON_VALUES},
    optional={"typ": st.sampled_from(["JWT", "jwt"]) | JSON_VALUES,
              "jku": st.sampled_from([SANDBOX_JKU, "http://127.0.0.1:9/jwks.json"]) | JSON_VALUES,
              "crit": JSON_VALUES},
) | JSON_VALUES
JWT_SEGMENTS = (
    (JWT_HEADERS | JSON_VALUES).map(lambda value: _b64(json.dumps(value).encode()))
    | st.binary(max_size=64).map(_b64)
    | st.text(alphabet="ABCDEFabcdef0123456789-_=.+/", max_size=40)
)
AUTHORIZATIONS = (
    st.tuples(JWT_SEGMENTS, JWT_SEGMENTS, JWT_SEGMENTS).map(lambda parts: "Bearer " + ".".join(parts))
    | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(str.strip)
)


@settings(max_examples=HTTP_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(authorization=AUTHORIZATIONS)
def test_http_arbitrary_authorization_never_5xx(authorization: str) -> None:
    """A JWT that is sent is verified even in development mode: garbage gets a 401, never a 5xx."""
    response = APP.test_client().get("/cds-services", headers={"Authorization": authorization})
    note(f"response: {response.status_code} {response.get_data(as_text=True)[:500]}")
    assert response.status_code in (200, 401), response.status_code
    SCHEMA["/cds-services"]["GET"].validate_response(response)


# ---- inputs the fuzzing above found answered with 500 (kept, one test each, so each fix shows) -----------------

IVIG_CODING = {"system": ATC, "code": "J06BA02"}
PREFETCH_KEYS = ("patient", "conditions", "weight", "labs", "medications", "administrations", "procedures",
                 "serviceRequests")


def minimal_request(order: dict | None = None, **prefetched: Any) -> dict[str, Any]:
    """The smallest order-sign request that reaches the guideline logic: one IVIG draft (plus ``order``'s
    members), every prefetch key null (no data) unless given: a list of resources becomes a searchset
    Bundle, anything else is sent as it is."""
    ivig = {"resourceType": "MedicationRequest", "medicationCodeableConcept": {"coding": [IVIG_CODING]}, **(order or {})}
    data: dict[str, Any] = dict.fromkeys(PREFETCH_KEYS)
    for key, value in prefetched.items():
        data[key] = {"resourceType": "Bundle", "entry": [{"resource": r} for r in value]} if isinstance(value, list) else value
    return {"hook": "order-sign", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"patientId": "pat-1", "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": ivig}]}},
            "prefetch": data}


def _gbs(**extra: Any) -> dict:
    return {"resourceType": "Condition", "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": ICD10CM, "code": "G61.0"}]}, **extra}


def _ckd(clinical_status: Any) -> dict:
    return {"resourceType": "Condition", "clinicalStatus": clinical_status,
            "code": {"coding": [{"system": ICD10CM, "code": "N18.4"}]}}


def _lab(code: str, **extra: Any) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": LOINC, "code": code}]}, **extra}


def _weight(**extra: Any) -> dict:
    return {"resourceType": "Observation", "status": "final", **extra}


_HIGH_CREATININE = _lab("2160-0", valueQuantity={"value": 2.4}, referenceRange=[{"high": {"value": 1.2}}])
_GRAMS = [{"doseQuantity": {"value": 40, "code": "g"}}]

# id -> request; the comment names where the service raised (cds_service at the commit these were found on)
CRASHERS: dict[str, dict[str, Any]] = {
    # draft orders: context.draftOrders is deliberately not validated as FHIR, but then read as if it were
    "draft-coding-not-array": minimal_request({"medicationCodeableConcept": {"coding": True}}),  # terminology._codings
    "draft-timing-not-object": minimal_request({"dosageInstruction": [{"timing": True}]}),  # draft_dosage.draft_dosage
    "draft-doseAndRate-not-array": minimal_request({"dosageInstruction": [{"doseAndRate": True}]}),  # draft_dosage
    "draft-doseQuantity-not-object": minimal_request({"dosageInstruction": [{"doseAndRate": [{"doseQuantity": True}]}]}),
    "draft-dose-code-array": minimal_request(
        {"dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 40, "code": [None]}}]}]}),  # draft_dosage
    "draft-repeat-not-object": minimal_request({"dosageInstruction": [{"timing": {"repeat": True}}]}),
    "draft-periodUnit-array": minimal_request({"dosageInstruction": [{"timing": {"repeat": {"periodUnit": []}}}]}),
    "draft-boundsDuration-code-array": minimal_request(
        {"dosageInstruction": [{"timing": {"repeat": {"boundsDuration": {"code": [None]}}}}]}),  # _course_days
    "draft-frequency-1e308": minimal_request(  # decimal.InvalidOperation in regimen._round
        {"dosageInstruction": [{"timing": {"repeat": {"frequency": 1e308}}, "doseAndRate": _GRAMS}]}),
    "draft-course-1e308-days": minimal_request(  # decimal.InvalidOperation in regimen.fmt
        {"dosageInstruction": [{"timing": {"repeat": {"boundsDuration": {"value": 1e308, "code": "d"}}},
                                "doseAndRate": _GRAMS}]},
        conditions=[_gbs()], weight=[_weight(valueQuantity={"value": 70, "code": "kg"})]),
    # prefetched resources
    "prefetch-entry-not-array": minimal_request(conditions={"resourceType": "Bundle", "entry": True}),  # prefetch._failure
    "prefetch-resource-not-object": minimal_request(conditions={"resourceType": "Bundle", "entry": [{"resource": True}]}),
    # found on review, not by the fuzzer: a prefetched OperationOutcome whose issues are not objects
    # fhir_client.outcome_summary
    "prefetch-outcome-issue-not-object": minimal_request(conditions={"resourceType": "OperationOutcome", "issue": ["x", 3]}),
    "condition-status-code-array": minimal_request(  # inputs._is_diagnosis
        conditions=[{"resourceType": "Condition", "clinicalStatus": {"coding": [{"code": []}]}}]),
    "observation-status-array": minimal_request(weight=[{"resourceType": "Observation", "status": []}]),  # _is_result
    "weight-valueQuantity-not-object": minimal_request(weight=[_weight(valueQuantity=True)]),  # body_weight.dosing_weight
    "weight-unit-code-array": minimal_request(weight=[_weight(valueQuantity={"value": 70, "code": [None]})]),
    "condition-onset-false": minimal_request(conditions=[_gbs(onsetDateTime=False)]),  # FHIRPath in knowledge.applies
    "lab-valueQuantity-not-object": minimal_request(labs=[_lab("98979-8", valueQuantity=True)]),  # cards._describe
    "condition-clinicalStatus-not-object": minimal_request(conditions=[_ckd(True)], labs=[_HIGH_CREATININE]),
    "condition-clinicalStatus-coding-not-array": minimal_request(conditions=[_ckd({"coding": True})],
                                                                 labs=[_HIGH_CREATININE]),
    "condition-clinicalStatus-coding-object": minimal_request(conditions=[_ckd({"coding": {"a": 1}})],
                                                              labs=[_HIGH_CREATININE]),
    "condition-onset-object": minimal_request(conditions=[_gbs(onsetDateTime={"resourceType": "Bundle"})]),  # _describe
}


@pytest.mark.parametrize("request_body", list(CRASHERS.values()), ids=list(CRASHERS))
def test_http_found_inputs_never_5xx(stub_app: Flask, request_body: dict[str, Any]) -> None:
    body = json.dumps(request_body).encode()
    response = stub_app.test_client().post("/cds-services/ivig-order-sign", data=body, content_type="application/json")
    assert_documented_answer(response, body)
