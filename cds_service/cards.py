"""Presentations rendered as CDS Hooks 2.0 cards, as DESIGN.md's card contract says.

What a card says is decided in presentation.py, for cards and $apply alike; this module only maps it onto the card
model: the indicator for the priority, the source, the suggestions and their actions, the override reasons.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from .engine import Finding
from .presentation import Presentation, Proposal, present

INDICATOR = {"routine": "info", "urgent": "warning", "stat": "critical"}
#: the card extension (CDS Hooks 2.0 `extension`) listing the recommendation codes a decision card states
STATES = "org.ivig-cds.states"
NON_ADHERENCE = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
OVERRIDE_REASONS = (
    {"system": NON_ADHERENCE, "code": "patient-ineligible", "display": "Patient does not meet eligibility for recommended action"},
    {"system": NON_ADHERENCE, "code": "risk-benefit-ratio", "display": "Recipient assessment of risk/benefit ratio"},
    {"system": NON_ADHERENCE, "code": "expert-contradicts", "display": "Advice from expert contradicts the recommended action"},
    {"system": NON_ADHERENCE, "code": "policy-contradicts", "display": "Institutional policy/guideline contradicts the recommended action"},
)


def render(findings: Iterable[Finding]) -> list[dict]:
    """The cards of one hook call, most severe first."""
    return [card(p) for p in present(findings)]


def card(presentation: Presentation) -> dict:
    result: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": presentation.summary,
        "detail": presentation.detail,
        "indicator": INDICATOR[presentation.priority],
        "source": {
            "label": presentation.documentation["display"],
            "url": presentation.documentation["url"],
            "topic": presentation.topic,
        },
    }
    if presentation.proposals:
        result["selectionBehavior"] = presentation.selection_behavior
        result["suggestions"] = [_suggestion(p) for p in presentation.proposals]
    if presentation.priority != "routine":  # advice that interrupts may be overridden, and the reason is asked
        result["overrideReasons"] = [dict(r) for r in OVERRIDE_REASONS]
    if presentation.links:
        result["links"] = [{"label": a.get("display") or a["url"], "url": a["url"], "type": "absolute"} for a in presentation.links]
    if presentation.states:
        result["extension"] = {STATES: list(presentation.states)}
    return result


def _suggestion(proposal: Proposal) -> dict:
    actions: list[dict[str, Any]] = [{
        "type": "update" if proposal.replaces_draft else "create",
        "description": proposal.description,
        "resource": proposal.order,
    }]
    actions += [{"type": "delete", "description": f"Remove the other IVIG draft {reference}: the course above replaces it",
                 "resourceId": [reference]} for reference in proposal.removes]
    return {"label": proposal.label, "uuid": str(uuid.uuid4()), "actions": actions}
