"""The services we announce on GET /cds-services, and the data each needs (prefetch templates).

The templates are generated from the data requirements of the Library the PlanDefinitions use, so
the requirements are written once: each DataRequirement's id is a prefetch key. Templates use only
CDS Hooks 2.0 tokens ({{context.patientId}}) and the spec's restricted query syntax (read, type
search by patient, token equality, _sort, _count); ValueSet filters are expanded into codes
because EHR servers rarely support `:in` with our ValueSets.
"""

from __future__ import annotations

from . import __version__
from .knowledge import CANONICAL_BASE, SEARCH_PARAMETERS, KnowledgeBase

HOOKS = ("order-select", "order-sign")


def service_id(hook: str) -> str:
    return f"ivig-{hook}"


def prefetch_template(requirement: dict, knowledge: KnowledgeBase) -> str:
    """The FHIR query that satisfies one DataRequirement for the patient in context."""
    kind = requirement["type"]
    if kind == "Patient":
        return "Patient/{{context.patientId}}"
    query = ["patient={{context.patientId}}"]
    for flt in requirement.get("codeFilter", []):
        if "valueSet" in flt:
            codes = knowledge.valueset(flt["valueSet"])["expansion"]["contains"]
            query.append(f"{SEARCH_PARAMETERS[flt['path']]}=" + ",".join(f"{c['system']}|{c['code']}" for c in codes))
        else:
            query.append(f"{SEARCH_PARAMETERS[flt['path']]}=" + ",".join(c["code"] for c in flt.get("code", [])))
    for order in requirement.get("sort", []):
        query.append("_sort=" + ("-" if order.get("direction") == "descending" else "") + SEARCH_PARAMETERS[order["path"]])
    if "limit" in requirement:
        query.append(f"_count={requirement['limit']}")
    return f"{kind}?" + "&".join(query)


def prefetch_templates(knowledge: KnowledgeBase) -> dict[str, str]:
    """Prefetch key -> query, one per data requirement."""
    return {key: prefetch_template(req, knowledge) for key, req in knowledge.data_requirements.items()}


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
            # CDS Hooks 3.0 (ballot) recommends the service's version in discovery, so an EHR can tell an upgrade
            "version": __version__,
            "usageRequirements": (
                "Draft IVIG orders as R4 MedicationRequests coded with ATC J06BA02 or an IVIG NDC, or named in text; "
                f"definitions at {CANONICAL_BASE}."
            ),
        }
        for hook in HOOKS
    ]
