"""The FHIR face of the service, under /fhir: PlanDefinition/$apply, reads of our definitions, and the
CapabilityStatement that tells a FHIR client both exist."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, jsonify, request

from . import __version__
from .apply import apply
from .errors import RequestError
from .http_policy import service
from .protocol import load_json

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
FHIR_JSON = "application/fhir+json"
APPLY = "http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply"


def _fhir(resource: dict) -> Response:
    response = jsonify(resource)
    response.content_type = FHIR_JSON
    return response


@bp.get("/metadata")
def capability_statement() -> Response:
    resources = []
    for kind in service().knowledge.resource_types:
        entry: dict = {"type": kind, "interaction": [{"code": "read"}]}
        if kind == "PlanDefinition":
            entry["operation"] = [{"name": "apply", "definition": APPLY}]
        resources.append(entry)
    return _fhir({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date.today().isoformat(),
        "kind": "instance",
        "software": {"name": "IVIG-CDS", "version": __version__},
        "implementation": {"description": "EFNS 2008 IVIG guideline: definitions and PlanDefinition/$apply",
                           "url": request.url_root.rstrip("/") + (bp.url_prefix or "")},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server", "resource": resources}],
    })


@bp.post("/PlanDefinition/<plan_id>/$apply")
def apply_plan(plan_id: str) -> Response:
    """R4 PlanDefinition/$apply: Parameters (subject, data, optional draftOrder) in, a CarePlan out."""
    cds = service()
    limits = cds.settings.limits
    parameters = load_json(request.get_data(), limits.max_json_depth)
    care_plan = apply(cds.knowledge, plan_id, parameters, today=date.today(), policy=cds.settings.dose_policy,
                      max_entries=limits.max_bundle_entries)
    return _fhir(care_plan)


@bp.get("/<resource_type>/<resource_id>")
def read_definition(resource_type: str, resource_id: str) -> Response:
    """Read one of our definitions, so the canonical references in a CarePlan can be followed."""
    resource = service().knowledge.resources.get(f"{resource_type}-{resource_id}.json")
    if resource is None:
        raise RequestError(f"no {resource_type}/{resource_id} here", status=404)
    return _fhir(resource)
