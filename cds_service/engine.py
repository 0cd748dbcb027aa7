"""The generic engine: which recommendations apply to this patient and this IVIG order.

Pure: plain data in, findings out. No HTTP, no Flask, no files. It knows nothing about any
disease; diseases are ValueSets and FHIRPath conditions in the knowledge base.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .inputs import PatientFacts, named_inputs
from .knowledge import KnowledgeBase, Recommendation
from .orders import is_ivig
from .regimen import Comparison, DraftDosage, compare, draft_dosage


@dataclass(frozen=True)
class Finding:
    """A recommendation that applies, with what the card needs to say about this patient and order."""

    recommendation: Recommendation
    order: dict
    dosage: DraftDosage
    comparison: Comparison | None  # None when the recommendation has no regimen
    facts: PatientFacts
    evidence: tuple[dict, ...]  # the patient's resources the conditions looked at
    not_on_record: tuple[str, ...]  # titles of observed ValueSets with no result on record
    age_years: int | None

    @property
    def departs(self) -> bool:
        return self.comparison is not None and self.comparison.conforms is False


def evaluate(
    knowledge: KnowledgeBase,
    *,
    hook: str,
    selected_orders: Sequence[dict],
    draft_orders: Sequence[dict],
    facts: PatientFacts,
    today: date,
    dose_tolerance: Decimal,
) -> list[Finding]:
    """Findings for every IVIG order among the selected orders; none when there is no IVIG order."""
    terminology = knowledge.terminology
    ivig_orders = [o for o in selected_orders if is_ivig(o, terminology)]
    if not ivig_orders:
        return []
    diagnoses = set().union(*(terminology.codings_in(c.get("code")) for c in facts.conditions))
    candidates = knowledge.candidates(hook, diagnoses)
    findings: list[Finding] = []
    said: set[str] = set()  # a recommendation without a regimen speaks once per call, not once per order
    for order in ivig_orders:
        dosage = draft_dosage(order)
        inputs = named_inputs(
            facts,
            hook=hook,
            order=order,
            other_orders=[o for o in draft_orders if o is not order],
            dosage=dosage,
            is_ivig=lambda resource: is_ivig(resource, terminology),
            is_known=terminology.is_known,
            today=today,
        )
        for rec in candidates:
            if not rec.regimens and rec.action_id in said:
                continue
            if not rec.applies(inputs):
                continue
            said.add(rec.action_id)
            comparison = compare(dosage, rec.regimens, facts.weight, dose_tolerance) if rec.regimens else None
            evidence, missing = _evidence(knowledge, rec, inputs)
            age = inputs["ageYears"] if isinstance(inputs["ageYears"], int) else None
            findings.append(Finding(rec, order, dosage, comparison, facts, evidence, missing, age))
    return findings


def _evidence(knowledge: KnowledgeBase, rec: Recommendation, inputs: dict) -> tuple[tuple[dict, ...], tuple[str, ...]]:
    """The coded facts on record that the recommendation looked at: every matching diagnosis,
    medication and procedure, and the latest result of each observed ValueSet (or its absence)."""
    terminology = knowledge.terminology
    watched = set(rec.watched_valuesets)
    found: list[dict] = []
    for pool in ("conditionHistory", "medications", "procedures", "plannedProcedures"):
        for resource in inputs[pool]:
            concept = resource.get("code") or resource.get("medicationCodeableConcept")
            if terminology.codings_in(concept) & watched and resource not in found:
                found.append(resource)
    if "ivigCourses" in rec.inputs_used:
        found += inputs["ivigCourses"][:3]  # the latest earlier courses the recommendation rests on
    missing = []
    for url in dict.fromkeys(rec.observed_valuesets + rec.watched_valuesets):  # each once, observed first
        latest = next((o for o in inputs["observations"] if terminology.member_of(o.get("code"), url)), None)
        if latest is not None and latest not in found:
            found.append(latest)
        elif latest is None and url in rec.observed_valuesets:
            missing.append(knowledge.title_of(url))
    return tuple(found), tuple(missing)
