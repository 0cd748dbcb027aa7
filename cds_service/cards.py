"""Findings rendered as CDS Hooks 2.0 cards, as DESIGN.md's card contract says.

The PlanDefinition action supplies the words (title -> summary, description -> detail,
priority -> indicator, documentation -> source); this module adds what only this patient and
this order can supply: the facts used, the dose arithmetic, and the one-click regimen.
"""

from __future__ import annotations

import copy
import html
import re
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from .engine import Finding
from .fhirjson import code_of, number, obj, objects, recorded_at, reference_of, text
from .regimen import UCUM, DosingWeight, Regimen, days_text, describe_all, fmt, magnitude
from .suggestion import suggested_order

INDICATOR = {"routine": "info", "urgent": "warning", "stat": "critical"}
#: the card extension (CDS Hooks 2.0 `extension`) listing the recommendation codes a decision card states
STATES = "org.ivig-cds.states"
_SEVERITY = {"critical": 0, "warning": 1, "info": 2}
NON_ADHERENCE = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
OVERRIDE_REASONS = (
    {"system": NON_ADHERENCE, "code": "patient-ineligible", "display": "Patient does not meet eligibility for recommended action"},
    {"system": NON_ADHERENCE, "code": "risk-benefit-ratio", "display": "Recipient assessment of risk/benefit ratio"},
    {"system": NON_ADHERENCE, "code": "expert-contradicts", "display": "Advice from expert contradicts the recommended action"},
    {"system": NON_ADHERENCE, "code": "policy-contradicts", "display": "Institutional policy/guideline contradicts the recommended action"},
)
DOSE_RATE_TYPE = "http://terminology.hl7.org/CodeSystem/dose-rate-type"


def render(findings: Iterable[Finding]) -> list[dict]:
    """Cards, most severe first (stable within a severity, i.e. in guideline order).

    A finding shown as a line (a reminder that holds for every order) goes at the end of the main card, the first
    informational one, so it is read with the guidance rather than as one more card; alone, it is a card."""
    findings = list(findings)
    lines = [f for f in findings if f.recommendation.as_line]
    shown = [f for f in findings if not f.recommendation.as_line] or lines
    cards = sorted((card(f) for f in shown), key=lambda c: _SEVERITY[c["indicator"]])
    if cards and shown is not lines and lines:
        main = next((c for c in cards if c["indicator"] == "info"), cards[0])
        main["detail"] += "\n\n" + "\n\n".join(f"**{f.recommendation.title}.** {f.recommendation.description}" for f in lines)
    return cards


def card(finding: Finding) -> dict:
    if finding.alternatives:
        return _decision_card(finding)
    rec = finding.recommendation
    indicator = INDICATOR[rec.priority]
    summary = _course_summary(finding) or rec.title
    if finding.departs and finding.comparison is not None:
        indicator = "critical" if indicator == "critical" else "warning"
        summary = _clip(f"IVIG draft: {finding.comparison.departure} ({rec.level_text}); guideline: {describe_all(rec.regimens)}")
    result: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "detail": detail(finding),
        "indicator": indicator,
        "source": {
            "label": rec.documentation["display"],
            "url": rec.documentation["url"],
            "topic": rec.topic,
        },
    }
    suggestions = _suggestions(finding)
    if suggestions:
        result["selectionBehavior"] = rec.selection_behavior or "at-most-one"  # required with suggestions
        result["suggestions"] = suggestions
    if indicator != "info":
        result["overrideReasons"] = [dict(r) for r in OVERRIDE_REASONS]
    links = [{"label": a.get("display") or a["url"], "url": a["url"], "type": "absolute"} for a in rec.links]
    if links:
        result["links"] = links
    return result


def _decision_card(decision: Finding) -> dict:
    """One card for several recommendations the record cannot choose between: what decides first, then each
    recommendation with its level and sentence. It is as severe as the most severe of them; it offers the regimen of
    the one that gives a dose, and when the draft departs from that regimen, its summary says so."""
    alternatives = [card(f) for f in decision.alternatives]
    rec = decision.recommendation
    lines = [f"**{rec.description}**", ""]
    facts: dict[str, None] = {}
    for finding in decision.alternatives:
        doc = finding.recommendation.documentation
        lines += [f"**{_stance(finding)}:** {finding.recommendation.title}", "", f"> {doc['citation']}", ""]
        if finding.recommendation.regimens:
            comparison = finding.comparison
            if comparison is not None and (comparison.conforms is not None or finding.course.stated):
                lines += [comparison.statement, ""]
            lines += [f"- {line}" for line in _regimen_lines(finding.recommendation.regimens, finding.facts.weight)] + [""]
        facts.update(dict.fromkeys(_patient_facts(finding)))
    if facts:
        lines += ["**Patient facts**", ""] + [f"- {html.escape(ehr_text(f), quote=False)}" for f in facts] + [""]
    departed = next((a for f, a in zip(decision.alternatives, alternatives, strict=True) if f.departs), None)
    result = {
        "uuid": str(uuid.uuid4()),
        "summary": departed["summary"] if departed else rec.title,
        "detail": "\n".join(lines).strip(),
        "indicator": min((a["indicator"] for a in alternatives), key=_SEVERITY.__getitem__),
        "source": {"label": rec.documentation["display"],
                   "url": rec.documentation["url"], "topic": rec.topic},
        "extension": {STATES: [f.recommendation.action_id for f in decision.alternatives]},
    }
    offered = next((a for a in alternatives if a.get("suggestions")), None)
    if offered is not None:
        result["selectionBehavior"], result["suggestions"] = offered["selectionBehavior"], offered["suggestions"]
    if result["indicator"] != "info":
        result["overrideReasons"] = [dict(r) for r in OVERRIDE_REASONS]
    return result


def detail(finding: Finding) -> str:
    rec = finding.recommendation
    doc = rec.documentation
    where = f", {doc['label']}" if doc.get("label") else ""
    lines = [f"**{_stance(finding)}**", ""]
    if rec.regimens:  # the action and the dose first, then the evidence
        comparison = finding.comparison
        if comparison is not None and (comparison.conforms is not None or finding.course.stated):
            lines += [comparison.statement, ""]
        lines += ["**Regimen**", ""] + [f"- {line}" for line in _regimen_lines(rec.regimens, finding.facts.weight)] + [""]
    if rec.description:
        lines += [rec.description, ""]
    lines += [f"> {doc['citation']}", ">", f"> — {doc['display']}{where}", ""]
    facts = _patient_facts(finding)
    if facts:  # fact lines carry EHR text, and clients such as the Sandbox render raw HTML in Markdown
        lines += ["**Patient facts**", ""] + [f"- {html.escape(ehr_text(f), quote=False)}" for f in facts] + [""]
    return "\n".join(lines).strip()


def _course_summary(finding: Finding) -> str | None:
    """For a card about the course total: how far the drafts are from the highest total the guideline gives."""
    total = finding.course.total_per_kg(finding.facts.weight)
    highest = finding.highest_total_per_kg
    if "courseTotalPerKg" not in finding.recommendation.inputs_used or total is None or not highest:
        return None
    return _clip(f"IVIG course {fmt(total)} g/kg: {magnitude(total / highest)} the highest total the guideline gives "
                 f"for any indication ({fmt(highest)} g/kg)")


#: the Markdown that text inside one list item could use to change what a card shows: emphasis (* and _ at a word's
#: edge), code, strike-through, a link or image (]( or ][ after a [), and what GitHub Flavored Markdown turns into a
#: link by itself (a URL scheme, "www."). Headings, quotes, lists and tables need a line of their own, and a line
#: break is never kept; HTML is escaped with the whole line.
_MARKDOWN = re.compile(r"[\\`*~]|(?<!\w)_|_(?!\w)|\](?=[(\[])|!(?=\[)")
_AUTOLINK = re.compile(r"(?i)\b(?:https?|ftp)(?=://)|\bwww(?=\.)")


def ehr_text(text: str) -> str:
    """Text from the record, shown as the characters it holds in a card's Markdown: one line, Markdown neutralised.

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


def _regimen_lines(regimens: tuple[Regimen, ...], weight: DosingWeight | None) -> list[str]:
    if weight is None:
        return [r.describe() for r in regimens]
    return [r.arithmetic(weight) for r in regimens]


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
    if "courseTotalPerKg" in used:
        facts.append(finding.course.describe(finding.facts.weight) or "The draft course: dose or length not stated")
    if "guidelineDiagnoses" in used:  # the diagnoses the indication would have to be among
        facts += [_describe(c) for c in finding.facts.conditions] or ["Diagnoses: none on record"]
    facts += [_describe(r) for r in finding.evidence]
    facts += [f"Coded only as {note}" for note in finding.broader_codes]
    facts += [f"{title}: no result on record" for title in finding.not_on_record]
    return facts


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
        return f"Diagnosis: {_name(resource.get('code'))} ({clinical}" + (f", since {onset[:10]})" if onset else ")")
    if kind == "MedicationRequest":
        return f"Medication: {_name(resource.get('medicationCodeableConcept'))} ({status or 'status not stated'}, {_when(resource)})"
    if kind == "MedicationAdministration":
        return f"Given: {_name(resource.get('medicationCodeableConcept'))} ({status or 'status not stated'}, {_when(resource)})"
    if kind == "ServiceRequest":
        return f"Planned: {_name(resource.get('code'))} ({status or 'status not stated'})"
    if kind == "Procedure":
        return f"Procedure: {_name(resource.get('code'))} ({_when(resource)})"
    return str(kind) if kind else "record"


def _name(concept: Any) -> str:
    concept = obj(concept)
    codings = objects(concept.get("coding"))
    coding = codings[0] if codings else {}
    name = text(concept.get("text")) or text(coding.get("display")) or "unnamed"
    code = text(coding.get("code"))
    return f"{name} [{code}]" if code else name


def _when(resource: dict) -> str:
    return (recorded_at(resource) or "date not recorded")[:10]


def _suggestions(finding: Finding) -> list[dict]:
    """One suggestion per regimen alternative, each replacing the whole course with one order.

    None when the weight is unknown or too old to dose by, when the draft already follows the regimen, or when
    several drafts without ids could not be replaced (a suggestion must never add a course to a course)."""
    weight = finding.facts.weight
    regimens = finding.recommendation.regimens
    if not regimens or weight is None or finding.weight is None or not finding.weight.current:
        return []
    if finding.comparison and finding.comparison.conforms:
        return []
    first, *others = finding.orders
    if others and not all(reference_of(o) for o in finding.orders):
        return []
    patient_id = text((finding.facts.patient or {}).get("id"))
    return [_suggestion(first, others, regimen, weight, patient_id) for regimen in regimens]


def _suggestion(order: dict, others: list[dict], regimen: Regimen, weight: DosingWeight, patient_id: str | None) -> dict:
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
        "route": copy.deepcopy(dict(regimen.route or {})),
        "doseAndRate": [
            {
                "type": {"coding": [{"system": DOSE_RATE_TYPE, "code": "calculated", "display": "Calculated"}]},
                "doseQuantity": {"value": _number(daily), "unit": "g", "system": UCUM, "code": "g"},
            }
        ],
    }
    if not instruction["route"]:
        del instruction["route"]
    resource = suggested_order(order, instruction, patient_id)
    has_id = bool(reference_of(order))
    actions: list[dict[str, Any]] = [{
        "type": "update" if has_id else "create",
        "description": f"{'Change the draft order to' if has_id else 'Order'} {label}",
        "resource": resource,
    }]
    for other in others:  # _suggestions offers none unless every other draft has an id
        reference = reference_of(other)
        actions.append({"type": "delete", "description": f"Remove the other IVIG draft {reference}: the course above replaces it",
                        "resourceId": [reference]})
    return {"label": label, "uuid": str(uuid.uuid4()), "actions": actions}


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _clip(text: str, limit: int = 139) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
