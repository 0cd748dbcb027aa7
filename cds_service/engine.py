"""The generic engine: which recommendations apply to this patient and this IVIG order.

Pure: plain data in, findings out. No HTTP, no Flask, no files. It knows nothing about any
disease; diseases are ValueSets and FHIRPath conditions in the knowledge base.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from functools import cached_property
from typing import Any

from .body_weight import latest_dosing_weight
from .draft_dosage import draft_dosages
from .fhirjson import element, obj, objects
from .inputs import PatientFacts, named_inputs
from .knowledge import KnowledgeBase
from .orders import OrderKind
from .recommendation import Recommendation
from .regimen import (
    Comparison,
    Course,
    DosePolicy,
    WeightStanding,
    compare,
    weight_standing,
)
from .terminology import ConceptIndex

#: the inputs that speak of an immunoglobulin order's route: when no selected order is IVIG, only the recommendations
#: that read one of them are evaluated
ROUTE_INPUTS = frozenset({"routeUndetermined", "routeNotLicensed"})


@dataclass(frozen=True)
class Finding:
    """A recommendation that applies, with what the card needs to say about this patient and these orders."""

    recommendation: Recommendation
    orders: tuple[dict, ...]  # the IVIG draft orders of the call: one course
    course: Course
    comparison: Comparison | None  # None when the recommendation has no regimen
    facts: PatientFacts
    weight: WeightStanding | None  # whether the recorded weight may set an absolute dose; None without a weight
    evidence: tuple[dict, ...]  # the patient's resources the conditions looked at
    not_on_record: tuple[str, ...]  # titles of observed ValueSets with no result on record
    age_years: int | None
    highest_total_per_kg: Decimal | None  # the highest course total of any regimen in the knowledge
    #: for a decision (a recommendation that stands for several), the findings of those that apply, in order
    alternatives: tuple[Finding, ...] = ()
    #: for each diagnosis the recommendation rests on only through a code broader than its disease (a WHO ICD-10
    #: category), what else that code covers
    broader_codes: tuple[str, ...] = ()
    #: the current diagnoses the order's indication would be among: the guideline's diagnoses on record or, when there
    #: are none, every current diagnosis (what a card that reads guidelineDiagnoses shows)
    indication_diagnoses: tuple[dict, ...] = ()

    @property
    def departs(self) -> bool:
        return self.comparison is not None and self.comparison.conforms is False


@dataclass(frozen=True)
class Call:
    """One hook call as the knowledge sees it: the IVIG drafts taken as one course, the patient's facts (a weight we
    cannot believe removed), and the base inputs the knowledge's FHIRPath reads."""

    hook: str
    orders: tuple[dict, ...]
    course: Course
    facts: PatientFacts
    today: date
    policy: DosePolicy
    inputs: dict[str, Any]  # the base inputs by name; evaluation adds the named definitions it needs
    route_only: bool  # no selected order is IVIG: only the recommendations about the route (ROUTE_INPUTS) speak
    index: ConceptIndex  # which ValueSets hold each of the call's concepts, each looked up once

    @cached_property
    def newest_results(self) -> dict[str, dict]:
        """The newest result on record in each ValueSet (observations come newest first): one pass over the record
        for the call, not one per ValueSet a card shows."""
        newest: dict[str, dict] = {}
        for observation in self.inputs["observations"]:
            for url in self.index.valuesets(observation.get("code")):
                newest.setdefault(url, observation)
        return newest


def prepare(
    knowledge: KnowledgeBase,
    *,
    hook: str,
    selected_orders: Sequence[dict],
    draft_orders: Sequence[dict],
    facts: PatientFacts,
    today: date,
    policy: DosePolicy,
    kinds: Sequence[OrderKind] | None = None,
) -> Call | None:
    """The call's IVIG drafts and inputs; None when no selected order is IVIG (nor immunoglobulin whose route decides).
    `kinds`: the selected orders' kinds, when the caller has them already (one per order, in order).

    Two IVIG drafts signed together are one patient's course, so they are checked by their sum and offered one
    regimen, never one each; at order-select, the session's other IVIG drafts (context, per the hook) are part of the
    selected order's course too: a course split over two drafts is not "50 % below" when one of them is selected.
    A recorded weight outside the plausible range is no weight: every fact and card then reads as if none were on
    record, with the reason."""
    age = facts.age_years(today)
    index = ConceptIndex(knowledge.terminology)
    weight, weight_note = latest_dosing_weight(
        facts.weight_records, lambda o: all(index.member_of(o.get("code"), url) for url in knowledge.body_weight_valuesets))
    facts = replace(facts, weight=weight, weight_note=weight_note)
    if facts.weight is not None and (implausible := policy.implausible(facts.weight, age)) is not None:
        facts = replace(facts, weight=None, weight_note=implausible)
    rules = knowledge.order_rules
    pairs = list(zip(selected_orders, kinds if kinds is not None else [rules.kind(o) for o in selected_orders], strict=True))
    ivig_orders = tuple(o for o, kind in pairs if kind is OrderKind.IVIG)
    if ivig_orders and hook == "order-select":  # the session's other IVIG drafts are the same course: context, counted
        selected = {id(o) for o in selected_orders}
        ivig_orders += tuple(o for o in draft_orders if id(o) not in selected and rules.kind(o) is OrderKind.IVIG)
    route_only = not ivig_orders  # no IVIG order: only what is said about the route applies
    if route_only:
        ivig_orders = (tuple(o for o, kind in pairs if kind is OrderKind.ROUTE_DECIDES)
                       or tuple(o for o, kind in pairs if kind is OrderKind.ROUTE_NOT_LICENSED))
    if not ivig_orders:
        return None
    course = Course(tuple(d for o in ivig_orders for d in draft_dosages(o)), heaviest_kg=policy.heaviest_plausible_kg,
                    orders=len(ivig_orders))
    mine = {id(o) for o in ivig_orders}
    inputs = named_inputs(
        facts,
        hook=hook,
        orders=ivig_orders,
        other_orders=[o for o in draft_orders if id(o) not in mine],
        course=course,
        highest_total_per_kg=knowledge.highest_course_total_per_kg,
        dose_tolerance=policy.tolerance,
        route_undetermined=route_only and any(kind is OrderKind.ROUTE_DECIDES for _, kind in pairs),
        route_not_licensed=any(kind is OrderKind.ROUTE_NOT_LICENSED for _, kind in pairs),
        kind=rules.kind,
        index=index,
        indications=knowledge.indications,
        today=today,
    )
    return Call(hook, ivig_orders, course, facts, today, policy, inputs, route_only, index)


def evaluate(knowledge: KnowledgeBase, call: Call | None) -> list[Finding]:
    """Findings for a call's IVIG drafts (see prepare); none when there is no IVIG order.

    Each recommendation speaks at most once per call. When the only immunoglobulin orders are ones whose route
    decides (a dual-route product with no route), or a subcutaneous product ordered intravenously, only the
    recommendations that speak of the route (read one of ROUTE_INPUTS) are evaluated: the guideline's advice would be
    about a drug we cannot name yet, or one it does not cover."""
    if call is None:
        return []
    hook, facts, today, policy = call.hook, call.facts, call.today, call.policy
    age = facts.age_years(today)
    standing = weight_standing(facts.weight, age, today, policy) if facts.weight else None
    diagnoses = set().union(*(call.index.valuesets(c.get("code")) for c in facts.conditions))
    candidates = knowledge.candidates(hook, diagnoses)
    if call.route_only:
        candidates = [rec for rec in candidates if not ROUTE_INPUTS.isdisjoint(rec.inputs_used)]
    resolve = knowledge.definitions.resolver(call.inputs, call.index)  # each named fact once, for every recommendation
    indication_diagnoses = tuple(call.inputs["guidelineDiagnoses"] or facts.conditions)
    findings: list[Finding] = []
    for rec in candidates:
        if not rec.applies(call.inputs, call.index, resolve):
            continue
        comparison = compare(call.course, rec.regimens, facts.weight, policy.tolerance) if rec.regimens else None
        evidence, missing = _evidence(knowledge, rec, call)
        findings.append(Finding(rec, call.orders, call.course, comparison, facts, standing, evidence, missing, age,
                                knowledge.highest_course_total_per_kg, broader_codes=_broader_codes(knowledge, rec, evidence),
                                indication_diagnoses=indication_diagnoses))
    findings = _decided(knowledge, findings, call, hook, resolve)
    return [f for f in findings if _worth_saying_at_signing(f)] if hook == "order-sign" else findings


def _worth_saying_at_signing(finding: Finding) -> bool:
    """At signing, only what is wrong: a departure from the regimen, a warning (a recommendation against, a safety
    finding), an unreadable order. The clinician saw the guidance when the order was selected; repeating it at
    signing teaches them to click cards away."""
    rec = finding.recommendation
    return (finding.departs or rec.priority != "routine" or rec.direction == "against"
            or any(_worth_saying_at_signing(a) for a in finding.alternatives))


def _decided(knowledge: KnowledgeBase, findings: list[Finding], call: Call, hook: str,
             resolve: Callable[[str], Any]) -> list[Finding]:
    """Where two or more of the recommendations a decision stands for apply, the record cannot tell which one does
    (the purpose of the order, the severity): one finding states them all, in place of theirs. Cards that contradict
    each other would leave the clinician to find out what decides; the decision says it."""
    for decision in knowledge.decisions:
        chosen = [f for f in findings if f.recommendation.action_id in decision.alternatives]
        if hook not in decision.hooks or len(chosen) < 2:
            continue
        if not decision.applies(call.inputs, call.index, resolve):
            continue
        mine = {id(f) for f in chosen}
        evidence = {id(r): r for f in chosen for r in f.evidence}
        dosed = next((f for f in chosen if f.comparison is not None), chosen[0])
        merged = replace(dosed, recommendation=decision, alternatives=tuple(chosen), evidence=tuple(evidence.values()),
                         not_on_record=tuple(dict.fromkeys(t for f in chosen for t in f.not_on_record)))
        at = findings.index(chosen[0])
        findings = [f for f in findings[:at] if id(f) not in mine] + [merged] + [f for f in findings[at:] if id(f) not in mine]
    return findings


def _broader_codes(knowledge: KnowledgeBase, rec: Recommendation, evidence: tuple[dict, ...]) -> tuple[str, ...]:
    """The notes of the broader codes the recommendation's diagnoses rest on: a diagnosis counts only when every
    coding that puts it in a ValueSet the recommendation reads is broader than that ValueSet's disease."""
    terminology = knowledge.terminology
    # only a ValueSet with a broader code among its members can give a note: for the others there is nothing to look up
    urls = [url for url in dict.fromkeys(rec.watched_valuesets + tuple(sorted(rec.indications))) if terminology.has_broader_codes(url)]
    if not urls:
        return ()
    notes: dict[str, None] = {}
    for resource in evidence:
        if resource.get("resourceType") != "Condition":
            continue
        codings = list(objects(obj(resource.get("code")).get("coding")))
        for url in urls:
            found = [(c, terminology.broader_note(c, url)) for c in codings if terminology.member_of(c, url)]
            if found and all(note for _, note in found):
                notes.update(dict.fromkeys(note for _, note in found if note))
    return tuple(notes)


#: base inputs whose every record a recommendation that reads them shows (unconfirmed diagnoses, records left out)
_SHOWN_WHOLE = ("unconfirmedGuidelineDiagnoses", "unreadableRecords")
#: base inputs of earlier courses: a recommendation that reads one shows the latest three
_COURSES = ("ivigCourses", "routeUnsettledCourses")


def _evidence(knowledge: KnowledgeBase, rec: Recommendation, call: Call) -> tuple[tuple[dict, ...], tuple[str, ...]]:
    """The coded facts on record that the recommendation looked at: every matching diagnosis,
    medication and procedure, and the latest result of each observed ValueSet (or its absence)."""
    inputs, index = call.inputs, call.index
    watched = set(rec.watched_valuesets)
    found: dict[int, dict] = {}  # by identity: the same record reached twice is shown once
    for pool in ("conditionHistory", "medications", "procedures", "plannedProcedures"):
        for resource in inputs[pool]:
            concept = element(resource, "code") or element(resource, "medication")
            if index.valuesets(concept) & watched:
                found.setdefault(id(resource), resource)
    for pool in _SHOWN_WHOLE:  # records the recommendation is about as such: each one is shown
        if pool in rec.inputs_used:
            for resource in inputs[pool]:
                found.setdefault(id(resource), resource)
    for pool in _COURSES:
        if pool in rec.inputs_used:
            for course in inputs[pool][:3]:  # the latest earlier courses the recommendation rests on
                found.setdefault(id(course), course)
    missing = []
    for url in dict.fromkeys(rec.observed_valuesets + rec.watched_valuesets):  # each once, observed first
        latest = call.newest_results.get(url)
        if latest is not None:
            found.setdefault(id(latest), latest)
        elif url in rec.observed_valuesets:
            missing.append(knowledge.title_of(url))
    return tuple(found.values()), tuple(missing)
