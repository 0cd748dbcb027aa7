"""PlanDefinition/$apply: the same advice as the cards, for FHIR-native clients.

R4's $apply returns a CarePlan; like HAPI FHIR's clinical reasoning module we contain the
RequestGroup (one action per applicable recommendation, rendered from the same presentations as the
CDS Hooks cards) and the proposed MedicationRequests in it. The patient's data comes in the
`data` parameter (a Bundle, as in CPG's $apply) and is sorted into the Library's data
requirements, so it is read exactly as prefetch is.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import date
from typing import Any

from . import engine
from .config import RequestLimits
from .errors import RequestError
from .inputs import facts_from
from .knowledge import KnowledgeBase
from .presentation import Presentation, present
from .protocol import check_entry_count
from .regimen import DosePolicy


def apply(knowledge: KnowledgeBase, plan_id: str, parameters: Any, *, today: date, policy: DosePolicy,
          max_entries: int = RequestLimits.max_bundle_entries) -> dict:
    """Evaluate one PlanDefinition for the subject and data in a Parameters resource; return the CarePlan.
    The `data` Bundles may hold ``max_entries`` entries together (413 above it)."""
    plan = knowledge.resources.get(f"PlanDefinition-{plan_id}.json")
    if plan is None:
        raise RequestError(f"no PlanDefinition with id {plan_id!r}", status=404)
    subject, data, order = _read_parameters(parameters, knowledge, max_entries)
    findings = (
        f
        for f in engine.evaluate(knowledge, engine.prepare(
            knowledge,
            hook="order-select",
            selected_orders=[order],
            draft_orders=[order],
            facts=facts_from(_as_prefetch(knowledge, data), subject.removeprefix("Patient/")),
            today=today,
            policy=policy,
        ))
        if f.recommendation.plan_url == plan["url"]
    )
    contained: list[dict] = []
    actions = [_action(p, contained, subject) for p in present(findings)]
    request_group = {
        "resourceType": "RequestGroup",
        "id": "request-group",
        "instantiatesCanonical": [plan["url"]],
        "status": "draft",
        "intent": "proposal",
        "subject": {"reference": subject},
        "authoredOn": today.isoformat(),
    }
    if actions:
        request_group["action"] = actions
    return {
        "resourceType": "CarePlan",
        "contained": [request_group, *contained],
        "instantiatesCanonical": [plan["url"]],
        "status": "draft",
        "intent": "proposal",
        "subject": {"reference": subject},
        "activity": [{"reference": {"reference": "#request-group"}}],
    }


def _read_parameters(parameters: Any, knowledge: KnowledgeBase, max_entries: int) -> tuple[str, list[dict], dict]:
    if not isinstance(parameters, Mapping) or parameters.get("resourceType") != "Parameters":
        raise RequestError("the body must be a FHIR Parameters resource")
    named: dict[str, list[dict]] = {}
    listed = parameters.get("parameter")
    for parameter in listed if isinstance(listed, list) else []:
        if isinstance(parameter, Mapping) and isinstance(parameter.get("name"), str):
            named.setdefault(parameter["name"], []).append(dict(parameter))
    subjects = [p.get("valueString") for p in named.get("subject", [])]
    if len(subjects) != 1 or not isinstance(subjects[0], str) or not subjects[0].startswith("Patient/"):
        raise RequestError("exactly one 'subject' parameter is required, as valueString 'Patient/<id>'")
    bundles = [parameter.get("resource") for parameter in named.get("data", [])]
    if not all(isinstance(bundle, Mapping) and bundle.get("resourceType") == "Bundle" for bundle in bundles):
        raise RequestError("'data' must be a Bundle resource")
    check_entry_count(bundles, max_entries, "the 'data' Bundles")
    data: list[dict] = []
    for bundle in bundles:
        entries = bundle.get("entry") if isinstance(bundle, Mapping) else None
        if isinstance(entries, list):
            data += [e["resource"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("resource"), dict)]
    orders = [p.get("resource") for p in named.get("draftOrder", [])]
    if len(orders) > 1 or (orders and not (isinstance(orders[0], dict) and knowledge.order_rules.is_ivig(orders[0]))):
        raise RequestError("'draftOrder', when given, must be one IVIG MedicationRequest")
    order = orders[0] if orders and isinstance(orders[0], dict) else _undosed_ivig_order(knowledge, subjects[0])
    return subjects[0], data, order


def _undosed_ivig_order(knowledge: KnowledgeBase, subject: str) -> dict:
    """The order under evaluation when the client sends none: IVIG, with no dose yet (as on order-select)."""
    coding = knowledge.order_rules.example_coding
    return {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": {"coding": [coding]},
        "subject": {"reference": subject},
    }


def _as_prefetch(knowledge: KnowledgeBase, resources: list[dict]) -> dict[str, dict]:
    """Sort resources into the Library's data requirements (type and code filters), keyed as prefetch is."""
    buckets: dict[str, list[dict]] = {key: [] for key in knowledge.data_requirements}
    for resource in resources:
        for key, requirement in knowledge.data_requirements.items():
            if resource.get("resourceType") == requirement["type"] and all(
                _passes(resource, flt, knowledge) for flt in requirement.get("codeFilter", [])
            ):
                buckets[key].append(resource)
                break
    return {key: {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in found]}
            for key, found in buckets.items()}


def _passes(resource: dict, code_filter: dict, knowledge: KnowledgeBase) -> bool:
    value = resource.get(code_filter["path"])
    if "valueSet" in code_filter:
        return knowledge.terminology.member_of(value, code_filter["valueSet"])
    return value in {c.get("code") for c in code_filter.get("code", [])}


def _action(presentation: Presentation, contained: list[dict], subject: str) -> dict:
    """A presentation as a RequestGroup action (the HL7 CDS-on-FHIR mapping of a card, read in reverse)."""
    action: dict[str, Any] = {
        "id": presentation.action_id,
        "title": presentation.summary,
        "description": presentation.detail,
        "code": [{"coding": [presentation.topic]}],
        "documentation": [presentation.documentation],
        "priority": presentation.priority,
    }
    if not presentation.proposals:  # advice without a proposed order is a message to the clinician (rqg-1)
        message = {
            "resourceType": "CommunicationRequest",
            "id": f"message-{len(contained) + 1}",
            "status": "draft",
            "subject": {"reference": subject},
            "payload": [{"contentString": presentation.detail}],
            "priority": presentation.priority,
        }
        contained.append(message)
        action["resource"] = {"reference": f"#{message['id']}"}
        return action
    action["selectionBehavior"] = presentation.selection_behavior
    action["action"] = []
    for proposal in presentation.proposals:
        order = copy.deepcopy(proposal.order)
        order.update(id=f"proposal-{len(contained) + 1}", intent="proposal", status="draft")
        order.pop("contained", None)  # contained resources may not nest
        contained.append(order)
        action["action"].append({"title": proposal.label, "description": proposal.description,
                                 "resource": {"reference": f"#{order['id']}"}})
    return action
