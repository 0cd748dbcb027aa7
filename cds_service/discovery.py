"""The services we announce on GET /cds-services, and the data each needs (prefetch templates).

Templates use only CDS Hooks 2.0 tokens ({{context.patientId}}) and the spec's restricted query
syntax (type-level search, patient reference, token equality, _sort, _count). Lab codes are read
from the ValueSets that the knowledge base ships, so they are not kept twice.
"""

from __future__ import annotations

from .knowledge import CANONICAL_BASE, KnowledgeBase

HOOKS = ("order-select", "order-sign")
_WEIGHT = "body-weight"
_LABS = ("egfr", "creatinine", "full-blood-count", "liver-enzymes")


def service_id(hook: str) -> str:
    return f"ivig-{hook}"


def prefetch_templates(knowledge: KnowledgeBase) -> dict[str, str]:
    """Prefetch key -> query. Conditions and medication requests are fetched whatever their status:
    a resolved thrombosis still counts as a history of thrombosis, and completed IVIG orders and
    administrations are the earlier courses that re-treatment and maintenance advice depend on.
    Active ServiceRequests are planned procedures (e.g. a thymectomy)."""

    def codes(*valuesets: str) -> str:
        return ",".join(
            f"{c['system']}|{c['code']}"
            for name in valuesets
            for c in knowledge.resources[f"ValueSet-{name}.json"]["expansion"]["contains"]
        )

    patient = "patient={{context.patientId}}"
    return {
        "patient": "Patient/{{context.patientId}}",
        "conditions": f"Condition?{patient}",
        "weight": f"Observation?{patient}&code={codes(_WEIGHT)}&_sort=-date&_count=1",
        "labs": f"Observation?{patient}&code={codes(*_LABS)}&_sort=-date&_count=100",
        "medications": f"MedicationRequest?{patient}",
        "administrations": f"MedicationAdministration?{patient}",
        "procedures": f"Procedure?{patient}&_sort=-date&_count=100",
        "serviceRequests": f"ServiceRequest?{patient}&status=active",
    }


def services(knowledge: KnowledgeBase) -> list[dict]:
    prefetch = prefetch_templates(knowledge)
    described = {
        "order-select": "selects an IVIG order",
        "order-sign": "signs orders that include IVIG",
    }
    return [
        {
            "hook": hook,
            "id": service_id(hook),
            "title": f"IVIG in neurological disease (EFNS 2008): {hook}",
            "description": (
                f"When a clinician {described[hook]}, states the EFNS guideline's recommendation for the patient's "
                "diagnoses with its level, proposes the regimen computed from the latest body weight, and warns "
                "about uses the guideline advises against, doses that depart from it, and safety findings."
            ),
            "prefetch": prefetch,
            "usageRequirements": (
                "Draft IVIG orders as R4 MedicationRequests coded with ATC J06BA02 or an IVIG NDC, or named in text; "
                f"definitions at {CANONICAL_BASE}."
            ),
        }
        for hook in HOOKS
    ]
