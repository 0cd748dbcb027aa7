"""What each finding says to the clinician, decided once for every way it is shown.

CDS Hooks cards (cards.py) and $apply's RequestGroup (apply.py) both render these presentations, so the words, the
urgency and the proposed orders cannot drift apart between the two. The PlanDefinition action supplies the words
(title, description, priority, documentation); this module adds what only this patient and this order can supply:
the facts used, the dose arithmetic, and the regimen as an order to sign.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from .engine import Finding
from .fhirjson import code_of, copied, element, number, obj, objects, recorded_at, reference_of, text
from .regimen import UCUM, DosingWeight, Regimen, days_text, describe_all, fmt, magnitude
from .suggestion import suggested_order

#: the most diagnoses a card lists by name: a long problem list is counted, not read out (alert fatigue)
_DIAGNOSES_SHOWN = 10
#: FHIR request priorities, most urgent first: a presentation's urgency, and the order presentations are shown in
URGENCY = ("stat", "urgent", "routine")
DOSE_RATE_TYPE = "http://terminology.hl7.org/CodeSystem/dose-rate-type"


@dataclass(frozen=True)
class Proposal:
    """An order the clinician can sign in one click: it replaces the whole draft course."""

    label: str
    description: str
    order: dict  # a valid R4 MedicationRequest
    replaces_draft: bool  # the draft has an id, so the order updates it; otherwise it is created
    removes: tuple[str, ...] = ()  # references of the other drafts of the course, which the order makes redundant


@dataclass(frozen=True)
class Presentation:
    """One piece of advice as the clinician reads it, whatever carries it."""

    action_id: str  # the PlanDefinition action it comes from
    summary: str  # one line, at most 140 characters
    detail: str  # Markdown
    priority: str  # a FHIR request priority (URGENCY)
    topic: dict  # the recommendation's code
    documentation: dict  # the guideline (a RelatedArtifact: display, url, citation, label)
    links: tuple[dict, ...] = ()  # further RelatedArtifacts
    proposals: tuple[Proposal, ...] = ()
    selection_behavior: str | None = None  # how many proposals may be chosen; set when there are proposals
    states: tuple[str, ...] = ()  # for a decision, the action ids of the recommendations it states


def present(findings: Iterable[Finding]) -> list[Presentation]:
    """Presentations, most urgent first (stable within an urgency, i.e. in guideline order).

    Two kinds of finding are not shown on their own when there is a card to carry them (the knowledge says which, with
    the shown-as extension), since one more card that repeats another is noise a clinician learns to skip:
    - a line (a reminder that holds for every order) goes at the end of the main presentation, the first routine one,
      so it is read with the guidance; alone, it is shown on its own;
    - a check that a departure from a regimen would repeat (the course is far above any regimen) goes at the top of
      the first departing presentation, which takes its urgency; with no departure, it is shown on its own.
    And every proposed order replaces the whole draft course, so only one presentation proposes orders (see
    _one_offer)."""
    findings = list(findings)
    departing = next((f for f in findings if f.departs or any(a.departs for a in f.alternatives)), None)
    lines = [f for f in findings if f.recommendation.shown_as == "line"]
    restated = [f for f in findings if f.recommendation.shown_as == "with-departure"] if departing else []
    shown = [f for f in findings if f.recommendation.shown_as == "card" or (f.recommendation.shown_as == "with-departure"
                                                                           and not restated)] or lines
    presented = [_restating(present_one(f), restated) if f is departing else present_one(f) for f in shown]
    presented.sort(key=lambda p: URGENCY.index(p.priority))
    presented = _one_offer(presented)
    if presented and shown is not lines and lines:
        at = next((i for i, p in enumerate(presented) if p.priority == "routine"), 0)
        added = "\n\n".join(f"**{f.recommendation.title}.** {f.recommendation.description}" for f in lines)
        presented[at] = replace(presented[at], detail=f"{presented[at].detail}\n\n{added}")
    return presented


def _one_offer(presented: list[Presentation]) -> list[Presentation]:
    """When several presentations propose orders (two diagnoses with a regimen each, or one code that covers two), only
    the first (the most urgent, else the first in guideline order) does: each order replaces the whole draft course,
    and accepting one card's order and then another's would replace it twice. The others keep their regimen, computed
    for this patient, in words, and say which card offers orders; no card offers an order its own words do not give."""
    offering = [i for i, p in enumerate(presented) if p.proposals]
    if len(offering) < 2:
        return presented
    note = (f"No order is offered with this card: the card \"{presented[offering[0]].summary}\" offers its own, and each "
            "offered order replaces the whole draft course. To follow this regimen instead, change the draft by hand.")
    result = list(presented)
    for i in offering[1:]:
        result[i] = replace(presented[i], proposals=(), selection_behavior=None, detail=f"{presented[i].detail}\n\n{note}")
    return result


def _restating(departure: Presentation, restated: list[Finding]) -> Presentation:
    """The departure's presentation, opened by the checks it carries (each its summary and description) and as urgent
    as the most urgent of them; it states their codes too."""
    checks = [present_one(f) for f in restated]
    opening = "\n\n".join(f"**{p.summary}.** {f.recommendation.description}" for f, p in zip(restated, checks, strict=True))
    return replace(
        departure,
        detail=f"{opening}\n\n{departure.detail}",
        priority=min([departure.priority, *(p.priority for p in checks)], key=URGENCY.index),
        states=(departure.states or (departure.action_id,)) + tuple(p.action_id for p in checks),
    )


def present_one(finding: Finding) -> Presentation:
    if finding.alternatives:
        return _decision(finding)
    rec = finding.recommendation
    priority = rec.priority
    summary = _course_summary(finding) or rec.title
    if finding.departs and finding.comparison is not None:
        priority = "stat" if priority == "stat" else "urgent"
        summary = _clip(f"IVIG draft: {finding.comparison.departure} ({rec.level_text}); guideline: {describe_all(rec.regimens)}")
    proposals = _proposals(finding)
    return Presentation(
        action_id=rec.action_id,
        summary=summary,
        detail=_detail(finding),
        priority=priority,
        topic=rec.topic,
        documentation=rec.documentation,
        links=rec.links,
        proposals=proposals,
        selection_behavior=(rec.selection_behavior or "at-most-one") if proposals else None,
    )


def _decision(decision: Finding) -> Presentation:
    """Several recommendations the record cannot choose between: what decides first, then each recommendation in one
    line with its level (and its regimen), the patient facts, and last the guideline's sentences, so that the clinician
    reads the decision before the evidence. As urgent as the most urgent of them; it proposes the regimen of the first
    that gives a dose, and when the draft departs from a regimen, its summary says so."""
    alternatives = [present_one(f) for f in decision.alternatives]
    rec = decision.recommendation
    lines = [f"**{rec.description}**", ""]
    facts: dict[str, None] = {}
    for finding in decision.alternatives:
        lines += [f"**{_stance(finding)}:** {finding.recommendation.title}", ""]
        lines += _regimen_block(finding, heading=False)
        facts.update(dict.fromkeys(_patient_facts(finding)))
    lines += _facts_block(list(facts))
    lines += ["**The guideline's sentences**", ""]
    lines += [f"> {f.recommendation.documentation['citation']}\n" for f in decision.alternatives]
    departed = next((a for f, a in zip(decision.alternatives, alternatives, strict=True) if f.departs), None)
    offered = next((a for a in alternatives if a.proposals), None)
    return Presentation(
        action_id=rec.action_id,
        summary=departed.summary if departed else rec.title,
        detail="\n".join(lines).strip(),
        priority=min((a.priority for a in alternatives), key=URGENCY.index),
        topic=rec.topic,
        documentation=rec.documentation,
        proposals=offered.proposals if offered else (),
        selection_behavior=offered.selection_behavior if offered else None,
        states=tuple(f.recommendation.action_id for f in decision.alternatives),
    )


def _detail(finding: Finding) -> str:
    rec = finding.recommendation
    doc = rec.documentation
    where = f", {doc['label']}" if doc.get("label") else ""
    lines = [f"**{_stance(finding)}**", ""]
    lines += _regimen_block(finding, heading=True)  # the action and the dose first, then the evidence
    if rec.description:
        lines += [rec.description, ""]
    lines += [f"> {doc['citation']}", ">", f"> — {doc['display']}{where}", ""]
    lines += _facts_block(_patient_facts(finding))
    return "\n".join(lines).strip()


def _regimen_block(finding: Finding, *, heading: bool) -> list[str]:
    """How the draft compares with the regimen, then the regimen (per kg, or for this weight)."""
    regimens = finding.recommendation.regimens
    if not regimens:
        return []
    lines = []
    comparison = finding.comparison
    if comparison is not None and (comparison.conforms is not None or finding.course.stated):
        lines += [comparison.statement, ""]
    if heading:
        lines += ["**Regimen**", ""]
    weight = finding.facts.weight
    return lines + [f"- {r.describe() if weight is None else r.arithmetic(weight)}" for r in regimens] + [""]


def _facts_block(facts: list[str]) -> list[str]:
    # fact lines carry EHR text, and clients such as the Sandbox render raw HTML in Markdown
    if not facts:
        return []
    return ["**Patient facts**", ""] + [f"- {html.escape(ehr_text(f), quote=False)}" for f in facts] + [""]


def _course_summary(finding: Finding) -> str | None:
    """For advice about the course total: how far the drafts are from the highest total the guideline gives. Drafts
    that state no number of days give at least one day of their daily doses."""
    highest = finding.highest_total_per_kg
    if "courseTotalPerKg" not in finding.recommendation.inputs_used or not highest:
        return None
    weight, course = finding.facts.weight, finding.course
    total = course.total_per_kg(weight)
    at_least = total is None
    if at_least:
        daily = course.daily_doses_per_kg(weight)
        total = sum(daily, Decimal(0)) if daily else course.least_per_kg(weight)
    if total is None:
        return None
    return _clip(f"IVIG course {'at least ' if at_least else ''}{fmt(total)} g/kg: {magnitude(total / highest)} the highest "
                 f"total the guideline gives for any indication ({fmt(highest)} g/kg)")


#: the Markdown that text inside one list item could use to change what a card shows: emphasis (* and _ at a word's
#: edge), code, strike-through, a link or image (]( or ][ after a [), and what GitHub Flavored Markdown turns into a
#: link by itself (a URL scheme, "www."). Headings, quotes, lists and tables need a line of their own, and a line
#: break is never kept; HTML is escaped with the whole line.
#: (Each alternative starts with its character, and a lookbehind after an underscore says what the one before it is:
#: the regular expression engine then skips to the few characters that can start a match, at a third of the cost.)
_MARKDOWN = re.compile(r"[\\`*~]|_(?<!\w_)|_(?!\w)|\](?=[(\[])|!(?=\[)")
_AUTOLINK = re.compile(r"(?i)(?<!\w)(?:https?(?=://)|ftp(?=://)|www(?=\.))")


def ehr_text(text: str) -> str:
    """Text from the record, shown as the characters it holds in Markdown: one line, Markdown neutralised.

    Clients such as the Sandbox render Markdown (and raw HTML, escaped with each fact line) in card details, so a
    display such as "**Stop IVIG** [here](http://...)" must read as those characters, not as emphasis and a link."""
    line = _MARKDOWN.sub(lambda m: "\\" + m.group(0), " ".join(text.split()))
    return _AUTOLINK.sub(lambda m: m.group(0) + "\\", line)  # "http\://", "www\." are not links


def _stance(finding: Finding) -> str:
    rec = finding.recommendation
    evidence = f" ({rec.evidence['display']})" if rec.evidence and rec.evidence.get("display") else ""
    if rec.level.get("code") == "none":
        return f"{rec.level_text}{evidence}"
    direction = {"against": "against IVIG", "for": "for IVIG"}.get(rec.direction or "", "")
    return f"{rec.level_text}{evidence}" + (f" — {direction}" if direction else "")


def _patient_facts(finding: Finding) -> list[str]:
    facts = []
    used = finding.recommendation.inputs_used
    if "ageYears" in used and finding.age_years is not None:
        facts.append(f"Age: {finding.age_years} years (born {(finding.facts.patient or {}).get('birthDate', '?')})")
    if finding.recommendation.regimens or used & {"weightKg", "courseTotalPerKg"}:
        weight = finding.facts.weight
        if weight is None or finding.weight is None:  # finding.weight is None exactly when there is no weight
            per_kg = " No absolute dose is given; the regimen is stated per kg." if finding.recommendation.regimens else ""
            facts.append(f"Body weight: missing. {finding.facts.weight_note}{per_kg}")
        else:
            converted = "" if weight.stated.endswith(" kg") else f" = {fmt(weight.kg)} kg"
            facts.append(f"Body weight: {weight.stated}{converted}, {finding.weight.said}")
    if used & {"courseTotalPerKg", "courseReadable"}:
        facts.append(finding.course.describe(finding.facts.weight) or "The draft course: dose or length not stated")
    least = finding.course.least_per_kg(finding.facts.weight) if "courseLeastPerKgAnyWeight" in used else None
    if least is not None and finding.course.heaviest_kg:
        heaviest = finding.course.heaviest_kg
        facts.append(f"With no usable body weight: {fmt(least * heaviest)} g is at least {fmt(least)} g/kg for any patient up to "
                     f"{fmt(heaviest)} kg (the heaviest plausible weight, Chan & Raffa 2017; not the guideline's)")
    if "guidelineDiagnoses" in used:  # the diagnoses the indication would have to be among
        shown = finding.indication_diagnoses
        facts += [_describe(c) for c in shown[:_DIAGNOSES_SHOWN]] or ["Diagnoses: none on record"]
        if len(shown) > _DIAGNOSES_SHOWN:
            facts.append(f"… and {len(shown) - _DIAGNOSES_SHOWN} more current diagnoses on record")
    facts += [_describe(r) for r in finding.evidence]
    facts += [f"Coded only as {note}" for note in finding.broader_codes]
    facts += [f"{title}: no result on record" for title in finding.not_on_record]
    return list(dict.fromkeys(facts))  # a diagnosis listed as on record and as evidence is said once


def _describe(resource: dict) -> str:
    """One line a clinician can check against the record. EHR data is read defensively (see fhirjson)."""
    kind = resource.get("resourceType")
    status = text(resource.get("status"))
    if kind == "Observation":
        quantity = obj(resource.get("valueQuantity"))
        value, unit = number(quantity.get("value")), text(quantity.get("unit")) or text(quantity.get("code")) or ""
        shown = f"{value} {unit}".strip() if value is not None else "no numeric value"
        return f"{_name(resource.get('code'))}: {shown} ({_when(resource)})"
    if kind == "Condition":
        onset = text(resource.get("onsetDateTime")) or text(resource.get("recordedDate"))
        clinical = code_of(resource, "clinicalStatus") or "status not stated"
        verification = code_of(resource, "verificationStatus")
        if verification and verification != "confirmed":  # an unconfirmed, provisional or differential diagnosis says so
            clinical += f", {verification}"
        uncoded = "" if objects(obj(resource.get("code")).get("coding")) else "; in words only, with no code: not read"
        return f"Diagnosis: {_name(resource.get('code'))} ({clinical}" + (f", since {onset[:10]}" if onset else "") + f"{uncoded})"
    if kind == "MedicationRequest":
        return f"Medication: {_name(element(resource, 'medication'))} ({status or 'status not stated'}, {_when(resource)})"
    if kind == "MedicationAdministration":
        return f"Given: {_name(element(resource, 'medication'))} ({status or 'status not stated'}, {_when(resource)})"
    if kind == "ServiceRequest":
        return f"Planned: {_name(resource.get('code'))} ({status or 'status not stated'})"
    if kind == "Procedure":
        return f"Procedure: {_name(resource.get('code'))} ({_when(resource)})"
    return str(kind) if kind else "record"


def _name(concept: Any) -> str:
    concept = obj(concept)
    codings = objects(concept.get("coding"))
    coding = codings[0] if codings else {}
    name = text(concept.get("text")) or text(coding.get("display")) or text(concept.get("display")) or "unnamed"  # a Reference
    code = text(coding.get("code"))
    return f"{name} [{code}]" if code else name


def _when(resource: dict) -> str:
    return (recorded_at(resource) or "date not recorded")[:10]


def _proposals(finding: Finding) -> tuple[Proposal, ...]:
    """One proposal per regimen alternative, each replacing the whole course with one order.

    None when the weight is unknown or too old to dose by, when the draft already follows the regimen, or when
    several drafts without ids could not be replaced (a proposal must never add a course to a course)."""
    weight = finding.facts.weight
    regimens = finding.recommendation.regimens
    if not regimens or weight is None or finding.weight is None or not finding.weight.current:
        return ()
    if finding.comparison and finding.comparison.conforms:
        return ()
    first, *others = finding.orders
    if others and not all(reference_of(o) for o in finding.orders):
        return ()
    patient_id = text((finding.facts.patient or {}).get("id"))
    removes = tuple(str(reference_of(o)) for o in others)
    return tuple(_proposal(first, removes, regimen, weight, patient_id) for regimen in regimens)


def _proposal(draft: dict, removes: tuple[str, ...], regimen: Regimen, weight: DosingWeight, patient_id: str | None) -> Proposal:
    daily = regimen.daily_grams(weight)
    label = f"IVIG {fmt(daily)} g/day for {days_text(regimen.days)} ({fmt(regimen.dose_per_kg_per_day)} g/kg/day × {fmt(weight.kg)} kg)"
    instruction: dict[str, Any] = {
        "text": f"{label}; weight measured {weight.measured or 'on an unrecorded date'}",
        "timing": {
            "repeat": {
                "frequency": 1,
                "period": 1,
                "periodUnit": "d",
                "boundsDuration": {"value": regimen.days, "unit": "d", "system": UCUM, "code": "d"},
            }
        },
        "route": copied(dict(regimen.route or {})),
        "doseAndRate": [
            {
                "type": {"coding": [{"system": DOSE_RATE_TYPE, "code": "calculated", "display": "Calculated"}]},
                "doseQuantity": {"value": _number(daily), "unit": "g", "system": UCUM, "code": "g"},
            }
        ],
    }
    if not instruction["route"]:
        del instruction["route"]
    replaces_draft = bool(reference_of(draft))
    return Proposal(
        label=label,
        description=f"{'Change the draft order to' if replaces_draft else 'Order'} {label}",
        order=suggested_order(draft, instruction, patient_id),
        replaces_draft=replaces_draft,
        removes=removes,
    )


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _clip(text: str, limit: int = 139) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
