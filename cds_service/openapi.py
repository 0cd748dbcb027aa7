"""The OpenAPI 3.0.3 description of this service's own endpoints, built from the discovery list.

``document(services)`` describes ``GET /cds-services``, ``POST /cds-services/{id}``,
``POST /cds-services/{id}/feedback`` and ``GET /openapi.json`` itself. The service ids and hooks of the
discovery list become enums, so a client (or a fuzzer) learns exactly which ids exist.

Shapes follow CDS Hooks 2.0 (request: S2 §2.1; response and card: S2 §3; feedback: S2 §4) and the
CDS Hooks Library order-select / order-sign contexts. The closest published OpenAPI (the unmerged
cds-hooks/api PR #5) was the starting point, with its known errors fixed here:

* ``OverrideReason.reason`` is a Coding (PR #5 made it refer to OverrideReason itself);
* ``Coding.system`` is required (S2: code and system are REQUIRED), and an override reason's Coding
  also requires ``display``;
* discovery has ``usageRequirements``; Action has ``resourceId`` (delete); Link has ``autolaunchable``;
  ``fhirAuthorization`` has ``patient``;
* URLs use the standard ``uri`` format (PR #5 used a non-standard ``url``).

The 2.0 rule that optional members are omitted rather than sent as ``null`` or empty (S2 "JSON") is
encoded for what we send: no member of a response is nullable, and optional strings and arrays
have ``minLength`` / ``minItems`` 1 (only ``cards`` may be an empty array). Request schemas state
what a conforming client sends; the service is more lenient in places (see ``protocol.py``), which
the descriptions say.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from importlib import metadata
from typing import Any

OPENAPI_VERSION = "3.0.3"
SECURITY_SCHEME = "cdsClientJwt"
_SPEC = "https://cds-hooks.hl7.org/2.0/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _response_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "description": description}


def _version() -> str:
    try:
        return metadata.version("ivig-cds")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _enum_or_string(values: list[str], description: str) -> dict[str, Any]:
    """A string schema; an enum of ``values`` when there are any (an empty enum matches nothing)."""
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "description": description}
    if values:
        schema["enum"] = values
    return schema


def _schemas(ids: list[str], hooks: list[str]) -> dict[str, Any]:
    coding_properties = {
        "code": _text("The code for what is being represented."),
        "system": {"type": "string", "minLength": 1, "format": "uri", "description": "The code system of `code`."},
        "display": _text("A short, human-readable label to display."),
    }
    fhir_resource = {
        "type": "object",
        "description": "A FHIR resource (JSON). Only `resourceType` is checked here.",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "minLength": 1}},
    }
    return {
        # ---- discovery (S2 §1) ---------------------------------------------------------------
        "Discovery": {
            "type": "object",
            "required": ["services"],
            "properties": {"services": {"type": "array", "items": _ref("CdsServiceDescription")}},
        },
        "CdsServiceDescription": {
            "type": "object",
            "required": ["hook", "id", "description"],
            "properties": {
                "hook": _enum_or_string(hooks, "The hook this service should be invoked on."),
                "id": _enum_or_string(ids, "The {id} of `{baseUrl}/cds-services/{id}`."),
                "title": _text("The human-friendly name of this service."),
                "description": _text("The description of this service."),
                "prefetch": _ref("PrefetchTemplates"),
                "usageRequirements": _text("Human-readable preconditions for using this service."),
            },
        },
        "PrefetchTemplates": {
            "type": "object",
            "description": "Prefetch key -> FHIR read or search (relative URL) with `{{context.*}}` tokens.",
            "minProperties": 1,
            "additionalProperties": {"type": "string", "minLength": 1},
        },
        # ---- service request (S2 §2.1; CDS Hooks Library order-select / order-sign) -----------------
        "CdsRequest": {
            "type": "object",
            "required": ["hook", "hookInstance", "context"],
            "description": (
                "A CDS Hooks 2.0 service call. The `hook` must be the hook of the service called. "
                "`fhirServer` is REQUIRED when `fhirAuthorization` is present. The service treats an optional "
                "member sent as `null` as absent (outside `prefetch`), although 2.0 clients should omit it."
            ),
            "properties": {
                "hook": _enum_or_string(hooks, "The hook that triggered this call."),
                "hookInstance": {"type": "string", "minLength": 1, "format": "uuid",
                                 "description": "A UUID unique to this hook invocation."},
                "fhirServer": {"type": "string", "format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9]",
                               "description": "Base URL of the client's FHIR server (https with production data)."},
                "fhirAuthorization": _ref("FhirAuthorization"),
                "context": _ref("OrderContext"),
                "prefetch": _ref("Prefetch"),
                "extension": _ref("Extension"),
            },
            "anyOf": [
                {"not": {"required": ["fhirAuthorization"]}},
                {"required": ["fhirServer"]},
            ],
        },
        "FhirAuthorization": {
            "type": "object",
            "description": "An OAuth 2.0 bearer token for calling `fhirServer`; transient, never logged.",
            "required": ["access_token", "token_type", "expires_in", "scope", "subject"],
            "properties": {
                "access_token": _text("The OAuth 2.0 access token."),
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "description": "Lifetime of the token in seconds."},
                "scope": _text("The SMART scopes the token grants."),
                "subject": _text("The OAuth 2.0 client id of this service at the client's authorization server."),
                "patient": _text("The patient's FHIR id, when the scopes include patient/ scopes."),
            },
        },
        "OrderContext": {
            "type": "object",
            "description": (
                "The context of order-select and order-sign. `selections` is REQUIRED for order-select (each "
                "must name an entry of `draftOrders`) and absent for order-sign."
            ),
            "required": ["userId", "patientId", "draftOrders"],
            "properties": {
                "userId": _text("The current user, e.g. `Practitioner/abc` or `PractitionerRole/123`."),
                "patientId": _text("The FHIR `Patient.id` of the current patient."),
                "encounterId": _text("The FHIR `Encounter.id` of the current encounter."),
                "selections": {
                    "type": "array",
                    "description": "order-select only: the newly selected orders, as `Type/id` into `draftOrders`.",
                    "items": {"type": "string", "pattern": "^[A-Z][A-Za-z]*/[^/\\s]+$"},
                },
                "draftOrders": _ref("DraftOrders"),
            },
        },
        "DraftOrders": {
            "type": "object",
            "description": "A FHIR Bundle of the draft orders (R4: MedicationRequest, ServiceRequest, ...).",
            "required": ["resourceType"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Bundle"]},
                "type": {"type": "string", "minLength": 1},
                "entry": {"type": "array", "items": _ref("BundleEntry")},
            },
        },
        "BundleEntry": {"type": "object", "properties": {"resource": _ref("FhirResource")}},
        "FhirResource": fhir_resource,
        "Prefetch": {
            "type": "object",
            "description": (
                "Prefetch key -> the FHIR resource or searchset Bundle the template asked for; `null` means "
                "the client has no data. A key the client could not satisfy is omitted."
            ),
            "additionalProperties": {**copy.deepcopy(fhir_resource), "nullable": True},
        },
        "Extension": {
            "type": "object",
            "description": "CDS Hooks extension members (reverse-domain names); ignored by this service.",
        },
        # ---- service response (S2 §3) --------------------------------------------------------
        "CdsResponse": {
            "type": "object",
            "required": ["cards"],
            "properties": {
                "cards": {"type": "array", "items": _ref("Card")},
                "systemActions": {"type": "array", "minItems": 1, "items": _ref("Action")},
            },
        },
        "Card": {
            "type": "object",
            "required": ["summary", "indicator", "source"],
            "properties": {
                "uuid": {"type": "string", "format": "uuid",
                         "description": "Identifies the card in feedback."},
                "summary": {"type": "string", "minLength": 1, "maxLength": 139,
                            "description": "One-sentence summary of fewer than 140 characters."},
                "detail": _text("Details in GitHub Flavored Markdown."),
                "indicator": {"type": "string", "enum": ["info", "warning", "critical"]},
                "source": _ref("Source"),
                "suggestions": {"type": "array", "minItems": 1, "items": _ref("Suggestion")},
                "selectionBehavior": {"type": "string", "enum": ["at-most-one", "any"]},
                "overrideReasons": {"type": "array", "minItems": 1, "items": _ref("OverrideReasonCoding")},
                "links": {"type": "array", "minItems": 1, "items": _ref("Link")},
                "extension": _ref("Extension"),
            },
            # "If suggestions are present, selectionBehavior MUST also be provided."
            "anyOf": [{"not": {"required": ["suggestions"]}}, {"required": ["selectionBehavior"]}],
        },
        "Source": {
            "type": "object",
            "required": ["label"],
            "properties": {
                "label": _text("Short, human-readable label of the source of the card."),
                "url": {"type": "string", "format": "uri", "description": "Absolute URL about the source."},
                "icon": {"type": "string", "format": "uri", "description": "Absolute URL of a 100x100 PNG icon."},
                "topic": _ref("Coding"),
            },
        },
        "Coding": {
            "type": "object",
            "required": ["code", "system"],
            "properties": coding_properties,
        },
        "OverrideReasonCoding": {
            "type": "object",
            "description": "A Coding offered as an override reason: `display` is REQUIRED.",
            "required": ["code", "system", "display"],
            "properties": copy.deepcopy(coding_properties),
        },
        "Suggestion": {
            "type": "object",
            "required": ["label"],
            "properties": {
                "label": _text("Human-readable label of the suggestion."),
                "uuid": {"type": "string", "format": "uuid", "description": "Identifies the suggestion in feedback."},
                "isRecommended": {"type": "boolean"},
                "actions": {"type": "array", "minItems": 1, "items": _ref("Action")},
            },
        },
        "Action": {
            "type": "object",
            "required": ["type", "description"],
            "properties": {
                "type": {"type": "string", "enum": ["create", "update", "delete"]},
                "description": _text("Human-readable description of the action."),
                "resource": _ref("FhirResource"),
                "resourceId": {"type": "string", "pattern": "^[A-Z][A-Za-z]*/[^/\\s]+$",
                               "description": "Relative reference of the resource to delete."},
            },
            # create and update carry the whole resource; delete names it by resourceId (resource: deprecated)
            "anyOf": [
                {"properties": {"type": {"enum": ["create", "update"]}}, "required": ["resource"]},
                {"properties": {"type": {"enum": ["delete"]}},
                 "anyOf": [{"required": ["resourceId"]}, {"required": ["resource"]}]},
            ],
        },
        "Link": {
            "type": "object",
            "required": ["label", "url", "type"],
            "properties": {
                "label": _text("Human-readable label of the link."),
                "url": {"type": "string", "format": "uri"},
                "type": {"type": "string", "enum": ["absolute", "smart"]},
                "appContext": _text("Passed to a SMART app; only for `smart` links."),
                "autolaunchable": {"type": "boolean"},
            },
            "anyOf": [{"properties": {"type": {"enum": ["smart"]}}}, {"not": {"required": ["appContext"]}}],
        },
        # ---- feedback (S2 §4) ----------------------------------------------------------------
        "FeedbackRequest": {
            "type": "object",
            "required": ["feedback"],
            "properties": {"feedback": {"type": "array", "items": _ref("Feedback")}},
        },
        "Feedback": {
            "type": "object",
            "required": ["card", "outcome", "outcomeTimestamp"],
            "properties": {
                "card": _text("The `uuid` of the card."),
                "outcome": {"type": "string", "enum": ["accepted", "overridden"]},
                "acceptedSuggestions": {"type": "array", "minItems": 1, "items": _ref("AcceptedSuggestion")},
                "overrideReason": _ref("FeedbackOverrideReason"),
                "outcomeTimestamp": {"type": "string", "format": "date-time",
                                     "description": "ISO 8601 UTC time of the outcome (RFC 3339 §5.6)."},
            },
        },
        "AcceptedSuggestion": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": _text("The `uuid` of the accepted suggestion.")},
        },
        "FeedbackOverrideReason": {
            "type": "object",
            "properties": {
                "reason": _ref("Coding"),
                "userComment": _text("Free text the user entered when overriding the card."),
            },
        },
        "EmptyObject": {"type": "object", "maxProperties": 0},
        # ---- errors ----------------------------------------------------------------------------
        "OperationOutcome": {
            "type": "object",
            "description": "A FHIR OperationOutcome saying why the request was not answered with cards.",
            "required": ["resourceType", "issue"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
                "issue": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["severity", "code"],
                        "properties": {
                            "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
                            "code": {"type": "string", "pattern": "^[a-z][a-z-]*$"},
                            "diagnostics": {"type": "string"},
                        },
                    },
                },
            },
        },
        "OpenApiDocument": {
            "type": "object",
            "required": ["openapi", "info", "paths"],
            "properties": {"openapi": {"type": "string"}, "info": {"type": "object"}, "paths": {"type": "object"}},
        },
    }


def _responses() -> dict[str, Any]:
    outcome = _ref("OperationOutcome")
    return {
        "BadRequest": _json(outcome, "The request body is not a valid request; `diagnostics` names the field at fault."),
        "Unauthorized": {
            **_json(outcome, "The JWT is missing (where required) or not acceptable; no reason is given."),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}},
        },
        "NotFound": _json(outcome, "No CDS service has this id."),
        "PreconditionFailed": _json(
            outcome, "Data the service needs came neither in `prefetch` nor from `fhirServer` (one issue per key)."),
        "PayloadTooLarge": _json(outcome, "The request body is larger than the service accepts."),
        "UnprocessableData": _json(
            outcome, "The patient data holds a value of the wrong type for a recommendation's conditions (the reason says which)."),
    }


def _fhir_resource(kind: str) -> dict:
    return {"type": "object", "required": ["resourceType"], "properties": {"resourceType": {"type": "string", "enum": [kind]}}}


def document(services: list[dict], *, jwt_required: bool = True, plan_ids: Iterable[str] = ()) -> dict:
    """The OpenAPI 3.0.3 document of this service, for the given discovery ``services`` list.

    ``jwt_required=False`` describes development mode, where a request without ``Authorization`` is
    served (a JWT that is sent is still verified); production (the default) requires one on every call.
    """
    ids = list(dict.fromkeys(s["id"] for s in services))
    hooks = list(dict.fromkeys(s["hook"] for s in services))
    service_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The id of a service listed by discovery.",
        "schema": _enum_or_string(ids, "A service id from GET /cds-services."),
    }
    errors = {"401": _response_ref("Unauthorized")}
    body_errors = {"400": _response_ref("BadRequest"), **errors, "404": _response_ref("NotFound"),
                   "413": _response_ref("PayloadTooLarge")}
    security: list[dict[str, list]] = [{SECURITY_SCHEME: []}]
    if not jwt_required:
        security.append({})  # the empty alternative: no credentials at all
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "IVIG CDS Hooks service",
            "version": _version(),
            "description": (
                "A CDS Hooks 2.0 service for the EFNS guideline on intravenous immunoglobulin in neurological "
                "diseases, answering the order-select and order-sign hooks. Every error answer is a FHIR "
                "OperationOutcome. All endpoints answer CORS preflight (OPTIONS) without credentials."
            ),
        },
        "externalDocs": {"description": "CDS Hooks 2.0", "url": _SPEC},
        "tags": [
            {"name": "discovery"},
            {"name": "service"},
            {"name": "feedback"},
            {"name": "fhir"},
            {"name": "meta"},
            {"name": "operations", "description": "For the operations team and the CDS committee, not for EHRs."},
        ],
        "security": security,
        "paths": {
            "/cds-services": {
                "get": {
                    "tags": ["discovery"],
                    "operationId": "discovery",
                    "summary": "List the CDS services offered.",
                    "responses": {"200": _json(_ref("Discovery"), "The services."), **errors},
                },
            },
            "/cds-services/{id}": {
                "post": {
                    "tags": ["service"],
                    "operationId": "callService",
                    "summary": "Call a CDS service: a hook request in, cards out.",
                    "parameters": [service_id],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CdsRequest")}}},
                    "responses": {
                        "200": _json(_ref("CdsResponse"), "The cards (an empty array when there is no advice)."),
                        **body_errors,
                        "412": _response_ref("PreconditionFailed"),
                        "422": _response_ref("UnprocessableData"),
                    },
                },
            },
            "/fhir/PlanDefinition/{planId}/$apply": {
                "post": {
                    "tags": ["fhir"],
                    "operationId": "applyPlanDefinition",
                    "summary": "R4 PlanDefinition/$apply: Parameters (subject, data, optional draftOrder) in, a CarePlan out.",
                    "parameters": [{"name": "planId", "in": "path", "required": True,
                                    "schema": {"type": "string", "enum": list(plan_ids)} if plan_ids else {"type": "string"}}],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _fhir_resource("Parameters")},
                                                                  "application/fhir+json": {"schema": _fhir_resource("Parameters")}}},
                    "responses": {
                        "200": {"description": "The CarePlan, with the RequestGroup contained.",
                                "content": {"application/fhir+json": {"schema": _fhir_resource("CarePlan")}}},
                        **body_errors,
                        "422": _response_ref("UnprocessableData"),
                    },
                },
            },
            "/fhir/metadata": {
                "get": {
                    "tags": ["fhir"],
                    "operationId": "capabilityStatement",
                    "summary": "The FHIR CapabilityStatement: reads of the definitions and PlanDefinition/$apply.",
                    "responses": {
                        "200": {"description": "The CapabilityStatement.",
                                "content": {"application/fhir+json": {"schema": _fhir_resource("CapabilityStatement")}}},
                        **errors,
                    },
                },
            },
            "/fhir/{resourceType}/{id}": {
                "get": {
                    "tags": ["fhir"],
                    "operationId": "readDefinition",
                    "summary": "Read one of the service's FHIR definitions.",
                    "parameters": [{"name": "resourceType", "in": "path", "required": True, "schema": {"type": "string"}},
                                   {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "The definition.", "content": {"application/fhir+json": {"schema": {"type": "object"}}}},
                        **errors,
                        "404": _response_ref("NotFound"),
                    },
                },
            },
            "/cds-services/{id}/feedback": {
                "post": {
                    "tags": ["feedback"],
                    "operationId": "sendFeedback",
                    "summary": "Report what the user did with cards (accepted / overridden); "
                               "checked against the cards returned, then stored.",
                    "parameters": [service_id],
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref("FeedbackRequest")}}},
                    "responses": {"200": _json(_ref("EmptyObject"), "Feedback recorded."), **body_errors,
                                  "503": _json(_ref("OperationOutcome"), "The feedback store cannot be reached; nothing was stored.")},
                },
            },
            "/healthz": {
                "get": {
                    "tags": ["operations"],
                    "operationId": "liveness",
                    "summary": "Liveness: the process answers. Checks nothing else; needs no credential.",
                    "security": [],
                    "responses": {"200": _json(_status_schema(), "Alive.")},
                },
            },
            "/readyz": {
                "get": {
                    "tags": ["operations"],
                    "operationId": "readiness",
                    "summary": "Readiness: the knowledge is loaded and the card store and the replay store answer now.",
                    "security": [],
                    "responses": {"200": _json(_status_schema(checks=True), "Ready: every check says ok."),
                                  "503": _json(_status_schema(checks=True), "Not ready: the checks say which part.")},
                },
            },
            "/metrics": {
                "get": {
                    "tags": ["operations"],
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (text format), only when IVIG_CDS_METRICS_TOKEN is set.",
                    "security": [{"metricsToken": []}],
                    "responses": {
                        "200": {"description": "The metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "401": _json(_ref("OperationOutcome"), "No or a wrong metrics credential."),
                        "404": _json(_ref("OperationOutcome"), "No metrics credential is configured: the page is not served."),
                    },
                },
            },
            "/report": {
                "get": {
                    "tags": ["operations"],
                    "operationId": "report",
                    "summary": "The CDS committee's report page (HTML), only when IVIG_CDS_REVIEWER_TOKEN is set.",
                    "security": [{"reviewerToken": []}, {"reviewerPassword": []}],
                    "parameters": [
                        {"name": name, "in": "query", "required": False, "description": described,
                         "schema": {"type": "string", "format": "date"}}
                        for name, described in (("since", "The first day, YYYY-MM-DD (default: 30 days before until)."),
                                                ("until", "The last day, YYYY-MM-DD (default: today, UTC)."))
                    ],
                    "responses": {
                        "200": {"description": "The report.", "content": {"text/html": {"schema": {"type": "string"}}}},
                        "400": _json(_ref("OperationOutcome"), "since or until is not a date."),
                        "401": _json(_ref("OperationOutcome"), "No or a wrong reviewer credential."),
                        "404": _json(_ref("OperationOutcome"), "No reviewer credential or no card store is configured."),
                    },
                },
            },
            "/openapi.json": {
                "get": {
                    "tags": ["meta"],
                    "operationId": "openApiDocument",
                    "summary": "This OpenAPI document.",
                    "responses": {"200": _json(_ref("OpenApiDocument"), "The OpenAPI document."), **errors},
                },
            },
        },
        "components": {
            "schemas": _schemas(ids, hooks),
            "responses": _responses(),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "The CDS Client's JWT (CDS Hooks 2.0 \"Trusting CDS Clients\"): ES384 or RS384, `iss` on the "
                        "allowlist, `aud` the exact URL called, `exp`, `iat` and `jti` present, `jti` used once. "
                        "Required in production; optional in development mode, where a JWT that is sent is still "
                        "verified."
                    ),
                },
                "metricsToken": {"type": "http", "scheme": "bearer",
                                 "description": "IVIG_CDS_METRICS_TOKEN, for the Prometheus scraper."},
                "reviewerToken": {"type": "http", "scheme": "bearer",
                                  "description": "IVIG_CDS_REVIEWER_TOKEN, for scripts."},
                "reviewerPassword": {"type": "http", "scheme": "basic",
                                     "description": "IVIG_CDS_REVIEWER_TOKEN as the password, any user name, for a browser."},
            },
        },
    }


def _status_schema(*, checks: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {"status": {"type": "string"}}
    if checks:
        properties["checks"] = {"type": "object", "additionalProperties": {"type": "string"},
                                "description": "Each part checked and what it said (ok, or the reason it is not)."}
    return {"type": "object", "required": ["status", *(["checks"] if checks else [])], "properties": properties}
