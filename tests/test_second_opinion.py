"""A second opinion on every expression of the knowledge: fhirpath.js, the HL7-listed FHIRPath engine, evaluates every
named definition and every condition on every catalogue patient (tests/patients.py), and must give our engine's answers.

The knowledge must not depend on one engine's quirks: a server operator's engine (HAPI's, or any other) reads the same
PlanDefinitions. Both engines get the same base inputs (engine.prepare, as a hook call computes them); fhirpath.js
evaluates the definitions itself, in the same order, each from its own FHIRPath text, and answers memberOf() from a
table our terminology precomputes for every concept in the inputs (fhirpath.js has no terminology of its own here).
All patients go to one node process (tests/fhirpath_js/evaluate.mjs, installed like tests/fhir_server/).

Also: the engine's fast membership path (Compiler._membership) gives the collection plain fhirpathpy gives.
"""
from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhirpathpy.engine.nodes import FP_Type, ResourceNode

from cds_service import discovery, engine
from cds_service.definitions import Definitions, Expression
from cds_service.inputs import facts_from
from cds_service.knowledge import KnowledgeBase, load
from cds_service.prefetch import resolve
from cds_service.protocol import parse_hook_request
from cds_service.regimen import DosePolicy
from cds_service.terminology import ConceptIndex
from tests.fhir_data import objects_in
from tests.medplum import MedplumUnavailable, ensure_installed
from tests.patients import catalogue

ROOT = Path(__file__).resolve().parents[1]
FHIRPATH_JS = Path(__file__).resolve().parent / "fhirpath_js"
SCRIPT = FHIRPATH_JS / "evaluate.mjs"
SHOWN = 25  # disagreements spelled out in a failure message; the rest are counted


@dataclass(frozen=True)
class Patient:
    name: str
    inputs: dict[str, Any]  # the base inputs, as a hook call computes them
    index: ConceptIndex  # the call's membership index, as the engine reads it


@pytest.fixture(scope="module")
def knowledge() -> KnowledgeBase:
    return load(ROOT)


@pytest.fixture(scope="module")
def patients(knowledge: KnowledgeBase) -> list[Patient]:
    """Every catalogue patient's base inputs, from its hook request as the service reads it (prefetch only)."""
    templates = discovery.prefetch_templates(knowledge)
    found = []
    for name, body in catalogue().items():
        request = parse_hook_request(json.dumps(body), body["hook"])
        prefetch = resolve(request, templates, timeout=1.0, may_call=lambda _server: False)
        call = engine.prepare(knowledge, hook=request.hook, selected_orders=request.selected_orders(),
                              draft_orders=request.draft_orders, facts=facts_from(prefetch), today=date.today(),
                              policy=DosePolicy())
        assert call is not None, f"catalogue patient {name!r} has no IVIG order: nothing to evaluate"
        found.append(Patient(name, call.inputs, call.index))
    return found


def evaluation_order(knowledge: KnowledgeBase) -> tuple[str, ...]:
    """Every named definition, each after the definitions it reads."""
    order, _ = knowledge.definitions.closure(d.name for d in knowledge.definitions)
    return order


def condition_texts(knowledge: KnowledgeBase) -> tuple[str, ...]:
    """Every distinct condition of every recommendation, in knowledge order."""
    return tuple(dict.fromkeys(c.expression.text for r in knowledge.recommendations for c in r.conditions))


# ---- what both engines' answers are compared as ----------------------------------------------------------------


def comparable(value: Any) -> Any:
    """A JSON-comparable form of an answer from either engine: a resource by its identity (resourceType/id), FHIRPath
    types as their FHIRPath string, numbers as doubles to 12 significant digits (JSON noise, not meaning)."""
    if isinstance(value, ResourceNode):
        return comparable(value.data)
    if isinstance(value, FP_Type):
        return str(value)
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, Mapping):
        if "resourceType" in value:
            return f"{value['resourceType']}/{value.get('id')}"
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float, Decimal)):
        return float(f"{float(value):.12g}")
    return repr(value)  # anything else differs visibly rather than silently


def outcome(run: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """{"value": comparable answer} or {"error": message}: our engine's answer, in the node script's shape."""
    try:
        return {"value": comparable(run(*args))}
    except Exception as exc:  # noqa: BLE001 - fhirpathpy raises bare Exceptions on type errors in the data
        return {"error": str(exc)[:300]}


def defined(definitions: Definitions, name: str, values: dict[str, Any], index: ConceptIndex) -> Any:
    """A named definition's value, set in `values` as the engine sets it; a failed one reads as empty afterwards, as in
    evaluate.mjs, so the definitions after it are still compared."""
    try:
        definitions.evaluate(name, values, index)
        return values[name]
    finally:
        values.setdefault(name, [])


def theirs(answer: dict[str, Any]) -> dict[str, Any]:
    return {"error": answer["error"]} if "error" in answer else {"value": comparable(answer["value"])}


def same(ours: dict[str, Any], other: dict[str, Any]) -> bool:
    """Equal answers; two refusals (errors) are the same answer, whatever their wording."""
    return ("error" in ours and "error" in other) or ours == other


# ---- the inputs, as fhirpath.js reads them ------------------------------------------------------------------------


def as_json(value: Any) -> Any:
    """JSON data: a Decimal input as a JSON number (integral ones as integers, as the data would carry them)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """The key both engines compute for a concept: JSON with keys sorted at every level, as evaluate.mjs writes it."""
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{canonical(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # JavaScript writes 1.0 as 1
    return json.dumps(value, ensure_ascii=False)




def memberships(knowledge: KnowledgeBase, inputs: list[Any]) -> dict[str, list[str]]:
    """Canonical concept -> the ValueSets our terminology puts it in, for every object in the inputs that is in one."""
    table: dict[str, list[str]] = {}
    for found in objects_in(inputs):
        valuesets = knowledge.terminology.codings_in(found)
        if valuesets:
            table[canonical(found)] = sorted(valuesets)
    return table


# ---- both engines, on every patient -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    patient: str
    expression: str  # "%name := FHIRPath" for a definition, the FHIRPath for a condition
    ours: dict[str, Any]
    theirs: dict[str, Any]

    def __str__(self) -> str:
        return (f"patient {self.patient!r}\n    expression: {self.expression}\n    fhirpathpy: {self.ours}\n"
                f"    fhirpath.js: {self.theirs}")


@dataclass(frozen=True)
class Opinions:
    definitions: list[tuple[str, str, dict, dict]]  # (patient, name, ours, theirs)
    conditions: list[tuple[str, str, dict, dict]]  # (patient, FHIRPath, ours, theirs)


def fhirpath_js(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """One node run of evaluate.mjs over the whole batch."""
    try:
        ensure_installed(FHIRPATH_JS, "fhirpath")
    except MedplumUnavailable as exc:
        pytest.fail(f"fhirpath.js cannot be installed: {exc}")
    result = subprocess.run([shutil.which("node") or "node", str(SCRIPT)], cwd=FHIRPATH_JS, input=json.dumps(batch),
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{SCRIPT.name} failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return json.loads(result.stdout)


def second_opinion(knowledge: KnowledgeBase, patients: list[Patient],
                   memberships_of: Callable[[KnowledgeBase, list[Any]], dict[str, list[str]]] | None = None) -> Opinions:
    """Both engines' answers to every definition and condition on these patients: fhirpath.js in one node run."""
    order = evaluation_order(knowledge)
    conditions = condition_texts(knowledge)
    by_text = {c.expression.text: c.expression for r in knowledge.recommendations for c in r.conditions}
    texts = {d.name: d.expression.text for d in knowledge.definitions}
    inputs = [as_json(p.inputs) for p in patients]
    answers = fhirpath_js({
        "definitions": [{"name": n, "expression": texts[n]} for n in order],
        "conditions": list(conditions),
        "memberships": (memberships_of or memberships)(knowledge, inputs),
        "patients": inputs,
    })
    assert len(answers) == len(patients)
    definitions, verdicts = [], []
    for patient, answer in zip(patients, answers, strict=True):
        values = dict(patient.inputs)
        for name in order:
            ours = outcome(defined, knowledge.definitions, name, values, patient.index)
            definitions.append((patient.name, name, ours, theirs(answer["definitions"][name])))
        for text, their in zip(conditions, answer["conditions"], strict=True):
            verdicts.append((patient.name, text, outcome(by_text[text], values), theirs(their)))
    return Opinions(definitions, verdicts)


@pytest.fixture(scope="module")
def opinions(knowledge: KnowledgeBase, patients: list[Patient]) -> Opinions:
    return second_opinion(knowledge, patients)


def report(disagreements: list[Disagreement], compared: int) -> str:
    shown = "\n".join(str(d) for d in disagreements[:SHOWN])
    more = f"\n... and {len(disagreements) - SHOWN} more" if len(disagreements) > SHOWN else ""
    return f"{len(disagreements)} of {compared} answers differ between fhirpathpy and fhirpath.js:\n{shown}{more}"


def test_every_named_definition_has_the_same_answer_in_fhirpath_js(knowledge, patients, opinions):
    texts = {d.name: d.expression.text for d in knowledge.definitions}
    assert len(opinions.definitions) == len(patients) * len(texts) > 0
    differ = [Disagreement(p, f"%{name} := {texts[name]}", ours, their)
              for p, name, ours, their in opinions.definitions if not same(ours, their)]
    assert not differ, report(differ, len(opinions.definitions))
    # not a vacuous agreement: the catalogue makes most definitions find something for some patient
    found = {name for _, name, ours, _ in opinions.definitions if ours.get("value") not in ([], None)}
    assert len(found) >= len(texts) // 2, f"only {sorted(found)} found anything on the catalogue"


def test_every_condition_has_the_same_answer_in_fhirpath_js(knowledge, patients, opinions):
    assert len(opinions.conditions) == len(patients) * len(condition_texts(knowledge)) > 0
    differ = [Disagreement(p, text, ours, their) for p, text, ours, their in opinions.conditions if not same(ours, their)]
    assert not differ, report(differ, len(opinions.conditions))
    answers = {json.dumps(ours) for _, _, ours, _ in opinions.conditions}
    assert {'{"value": [true]}', '{"value": [false]}'} <= answers, answers


def test_the_comparison_sees_a_difference(knowledge, patients):
    """Not agreement by construction: withhold one diagnosis' ValueSets from fhirpath.js's table, and the definitions
    and conditions that read that diagnosis must come out different."""
    patient = next(p for p in patients if p.inputs["conditions"])
    hidden = canonical(as_json(patient.inputs["conditions"][0]["code"]))

    def withheld(kb: KnowledgeBase, inputs: list[Any]) -> dict[str, list[str]]:
        table = memberships(kb, inputs)
        assert table.pop(hidden)
        return table

    found = second_opinion(knowledge, [patient], withheld)
    differ = {name for _, name, ours, their in found.definitions if not same(ours, their)}
    diagnoses = {name for _, name, ours, _ in found.definitions if ours.get("value") and name.endswith("Diagnosis")}
    assert diagnoses and diagnoses <= differ, (diagnoses, differ)
    assert any(not same(ours, their) for _, _, ours, their in found.conditions)


def test_memberships_are_precomputed_for_the_concepts_the_conditions_read(knowledge, patients):
    """The table fhirpath.js answers memberOf() from holds each coded record's concept with our terminology's answer."""
    inputs = [as_json(p.inputs) for p in patients]
    table = memberships(knowledge, inputs)
    conditions = [c for p in inputs for c in p["conditions"]]
    assert conditions
    for condition in conditions:
        assert table[canonical(condition["code"])] == sorted(knowledge.terminology.codings_in(condition["code"]))


# ---- the fast membership path -------------------------------------------------------------------------------------


def test_fast_membership_path_gives_what_plain_fhirpathpy_gives(knowledge, patients):
    """A membership definition is answered from the call's index; its own FHIRPath, run by fhirpathpy, must agree."""
    membership = [d for d in knowledge.definitions if d.expression.membership is not None]
    assert len(membership) >= len(list(knowledge.definitions)) // 2, "the fast path no longer covers the membership definitions"
    differ = []
    for definition in membership:
        expression = definition.expression
        for patient in patients:
            expected = [item.data if isinstance(item, ResourceNode) else item for item in expression.run({}, patient.inputs)]
            got = expression(patient.inputs, patient.index)
            if got != expected:
                differ.append(f"{patient.name!r}: %{definition.name} := {expression.text}\n    index: {comparable(got)}\n"
                              f"    fhirpathpy: {comparable(expected)}")
    assert not differ, f"{len(differ)} differ:\n" + "\n".join(differ[:SHOWN])
    found = sum(1 for d in membership for p in patients if d.expression(p.inputs, p.index))
    assert found >= len(patients), "the catalogue patients should match some membership definitions"


def test_the_logic_path_gives_what_plain_fhirpathpy_gives(knowledge, patients):
    """Conditions that are only logic over named facts are decided without fhirpathpy; fhirpathpy must agree."""
    order = evaluation_order(knowledge)
    expressions = [c.expression for r in knowledge.recommendations for c in r.conditions]
    expressions += [d.expression for d in knowledge.definitions]
    logical = [e for e in expressions if e.logic is not None]
    assert len(logical) >= len(expressions) // 2, "the logic path no longer covers most conditions"
    differ, decided = [], 0
    for patient in patients:
        values = dict(patient.inputs)
        for name in order:
            defined(knowledge.definitions, name, values, patient.index)
        for expression in logical:
            answer = expression.logic(values.__getitem__)
            if answer is None:
                continue  # left to fhirpathpy
            decided += 1
            expected = [item.data if isinstance(item, ResourceNode) else item for item in expression.run({}, values)]
            if answer != expected:
                differ.append(f"{patient.name!r}: {expression.text}\n    logic: {answer}\n    fhirpathpy: {expected}")
    assert not differ, f"{len(differ)} differ:\n" + "\n".join(differ[:SHOWN])
    assert decided >= len(logical) * len(patients) // 2, "the logic path leaves most answers to fhirpathpy"


def test_a_path_over_an_empty_fact_is_empty_as_fhirpathpy_says(knowledge, patients):
    """`%x.where(...).first()` and the like are answered empty without fhirpathpy when %x is empty."""
    shortcut = [d.expression for d in knowledge.definitions if d.expression.empty_from is not None]
    assert shortcut, "no definition takes the empty path any more"
    for patient in patients:
        values = dict(patient.inputs)
        for name in evaluation_order(knowledge):
            defined(knowledge.definitions, name, values, patient.index)
        for expression in shortcut:
            if not values[expression.empty_from]:
                assert expression.run({}, values) == [], (patient.name, expression.text)


def plain_fhirpathpy(expression: Expression, values: dict[str, Any]) -> list | str:
    """fhirpathpy's answer (resources unwrapped), or the error it raises: a fast path must not answer where it refuses."""
    try:
        return [item.data if isinstance(item, ResourceNode) else item for item in expression.run({}, values)]
    except Exception as exc:  # noqa: BLE001 - fhirpathpy raises bare Exceptions on data it refuses
        return f"error: {exc}"


def disagreement(answer: list | None, expression: Expression, values: dict[str, Any]) -> str | None:
    """None when a fast path left the answer to fhirpathpy, "" when it gave fhirpathpy's answer, else both answers."""
    if answer is None:
        return None
    got, expected = [getattr(item, "data", item) for item in answer], plain_fhirpathpy(expression, values)
    return "" if got == expected else f"fast path {comparable(got)}, fhirpathpy {comparable(expected)}"


def test_the_threshold_path_gives_what_plain_fhirpathpy_gives(knowledge, patients):
    """`%x.where(path < number)` is answered by walking the records; fhirpathpy must agree on every catalogue patient
    and on records of every odd shape (where the walk is not sure, it leaves the answer to fhirpathpy)."""
    thresholds = [d.expression for d in knowledge.definitions if d.expression.threshold is not None]
    assert thresholds, "no definition takes the threshold path any more"
    odd_values: list[dict[str, Any]] = [
        {"valueQuantity": {"value": 59}}, {"valueQuantity": {"value": 60}}, {"valueQuantity": {"value": 60.0}},
        {"valueQuantity": {"value": 59.999}}, {"valueQuantity": {"value": -1}}, {"valueQuantity": {"value": 1e6}},
        {"valueQuantity": {"unit": "mL/min"}}, {}, {"valueQuantity": {"value": "50"}}, {"valueQuantity": {"value": True}},
        {"valueQuantity": {"value": [50]}}, {"valueQuantity": [{"value": 50}]}, {"valueInteger": 50}, {"valueString": "50"},
        {"valueQuantity": {"value": 50}, "valueInteger": 50}, {"valueQuantity": {"_value": {"extension": []}}},
        {"valueCodeableConcept": {"text": "low"}}, {"valueQuantity": {"value": None}},
    ]
    odd = [{"resourceType": "Observation", "id": f"odd-{n}", "status": "final", **value} for n, value in enumerate(odd_values)]
    differ, answered = [], 0
    for patient in patients:
        values = dict(patient.inputs)
        for name in evaluation_order(knowledge):
            defined(knowledge.definitions, name, values, patient.index)
        cases = [values] + [{**values, e.threshold.base: [record]} for e in thresholds for record in odd]
        for case in cases:
            for expression in thresholds:
                assert expression.threshold is not None
                found = disagreement(expression.threshold(case.__getitem__), expression, case)
                answered += found is not None
                if found:
                    differ.append(f"{patient.name!r}: {expression.text} on {comparable(case[expression.threshold.base])}: {found}")
    assert not differ, f"{len(differ)} differ:\n" + "\n".join(differ[:SHOWN])
    assert answered >= len(patients) * len(thresholds), "the threshold path leaves most answers to fhirpathpy"


def test_arithmetic_in_a_condition_gives_what_plain_fhirpathpy_gives(knowledge):
    """`%a > %b * (1 + %c)` is decided by the logic path on numbers, as fhirpathpy computes it (Python's int and Decimal
    arithmetic), and left to fhirpathpy for anything else; on a grid of values of every kind both must agree."""
    computed = [e for r in knowledge.recommendations for c in r.conditions for e in [c.expression]
                if e.logic is not None and "*" in e.text]
    assert computed, "no condition with arithmetic takes the logic path any more"
    grid: list[Any] = [[], Decimal("2"), Decimal("2.4"), Decimal("2.52"), Decimal("2.5200001"), Decimal("0.05"), 0, 2, 3,
                       [Decimal("1"), Decimal("2")], 2.4, True, "2", [Decimal("2.4")]]
    differ, decided = [], 0
    for expression in computed:
        names = sorted(expression.names)
        for n, combination in enumerate(itertools.product(grid, repeat=len(names))):
            values = dict(zip(names, combination, strict=True))
            assert expression.logic is not None
            found = disagreement(expression.logic(values.__getitem__), expression, values)
            decided += found is not None
            if found:
                differ.append(f"{expression.text} with {values}: {found}")
            if n > 4000:
                break
    assert not differ, f"{len(differ)} differ:\n" + "\n".join(differ[:SHOWN])
    assert decided >= 500, decided
