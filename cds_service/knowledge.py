"""The guideline's knowledge, loaded, validated and indexed once at start-up.

Everything disease-specific lives in `plandefinitions/` and `valuesets/` as FHIR R4 JSON. This
module turns those files into `Recommendation`s (recommendation.py) the engine can evaluate without touching disk or
parsing anything per request, and refuses to start on a definition it cannot trust: a broken
file stops start-up with a message naming the file and the fault.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from .definitions import Compiler, DefinitionFault, Definitions
from .inputs import BASE_INPUTS, WEIGHT_REQUIREMENT
from .orders import OrderRules
from .recommendation import Condition, Recommendation
from .regimen import Regimen, RegimenError, regimen_from_activity
from .terminology import Terminology

CANONICAL_BASE = "http://ivig-cds.org/fhir"
STRENGTH = "http://hl7.org/fhir/StructureDefinition/cqf-strengthOfRecommendation"
QUALITY = "http://hl7.org/fhir/StructureDefinition/cqf-qualityOfEvidence"
DIRECTION = "http://hl7.org/fhir/uv/cpg/StructureDefinition/cpg-directionOfRecommendation"
#: on an action that stands for several recommendations when the record cannot tell which applies (valueId: an action id)
DECIDES_BETWEEN = f"{CANONICAL_BASE}/StructureDefinition/decides-between"
#: the level of such an action: it has none of its own, each recommendation it states keeps its own
#: how an action's finding is shown, when not as a card of its own (valueCode): "line", a line in the main card;
#: "with-departure", inside the card of a regimen the draft departs from, when there is one
SHOWN_AS = f"{CANONICAL_BASE}/StructureDefinition/shown-as"
SHOWN_AS_CODES = ("card", "line", "with-departure")
DECISION_LEVEL = {"code": "decision", "display": "What decides between the guideline's recommendations"}
KNOWLEDGE_DIRS = ("valuesets", "plandefinitions")
#: DataRequirement codeFilter.path / sort.path the service can turn into a FHIR search parameter
SEARCH_PARAMETERS = {"code": "code", "status": "status", "effective": "date", "performed": "date",
                     "authoredOn": "authoredon", "recordedDate": "recorded-date"}
_PRIORITIES = ("routine", "urgent", "stat")
SUMMARY_LIMIT = 140



class DefinitionError(Exception):
    """A knowledge file we will not serve from."""

    def __init__(self, path: Path | str, fault: str):
        super().__init__(f"{path}: {fault}")
        self.path, self.fault = str(path), fault


class KnowledgeBase:
    """The loaded definitions, the terminology, and an index from diagnosis ValueSet to recommendation."""

    def __init__(self, resources: dict[str, dict], terminology: Terminology, recommendations: Iterable[Recommendation],
                 data_requirements: dict[str, dict], regimens: Iterable[Regimen], order_rules: OrderRules,
                 definitions: Definitions):
        self.resources = resources  # file name -> resource, for export and review
        #: the named facts conditions read, each evaluated at most once per call
        self.definitions = definitions
        #: which orders are IVIG: the product and route rules of the ValueSets
        self.order_rules = order_rules
        #: the highest course total, in g/kg, of any regimen the knowledge gives (the guideline's, for any indication)
        self.highest_course_total_per_kg: Decimal | None = max((r.total_per_kg for r in regimens), default=None)
        self.terminology = terminology
        self.data_requirements = data_requirements  # prefetch key -> FHIR DataRequirement
        #: the ValueSets an Observation must be in to be a body weight: those the weight data requirement names
        weight_filters = data_requirements.get(WEIGHT_REQUIREMENT, {}).get("codeFilter", [])
        self.body_weight_valuesets = tuple(f["valueSet"] for f in weight_filters if isinstance(f.get("valueSet"), str))
        self.resource_types = tuple(sorted({r["resourceType"] for r in resources.values()}))
        self.recommendations = tuple(recommendations)
        self._position = {id(r): i for i, r in enumerate(self.recommendations)}  # definition order
        self._by_indication: dict[str, list[Recommendation]] = defaultdict(list)
        self._always: list[Recommendation] = []
        self._candidates: dict[tuple[str, frozenset[str]], tuple[Recommendation, ...]] = {}  # see candidates()
        #: the diagnosis ValueSets some recommendation is for: a patient with none of them is outside the guideline
        self.indications = frozenset(url for rec in self.recommendations for url in rec.indications)
        #: the actions that stand for several recommendations, in definition order (the engine applies them last)
        self.decisions = tuple(r for r in self.recommendations if r.alternatives)
        for rec in self.recommendations:
            if rec.alternatives:
                continue
            if rec.indications:
                for url in rec.indications:
                    self._by_indication[url].append(rec)
            else:
                self._always.append(rec)

    def definition(self, url: str) -> dict | None:
        """One of our resources by its canonical URL."""
        kind, _, id_ = url.removeprefix(CANONICAL_BASE + "/").partition("/")
        return self.resources.get(f"{kind}-{id_}.json")

    def valueset(self, url: str) -> dict:
        found = self.definition(url)
        if found is None:
            raise KeyError(url)
        return found

    def title_of(self, url: str) -> str:
        return (self.definition(url) or {}).get("title", url)

    def candidates(self, hook: str, diagnosis_valuesets: Iterable[str]) -> list[Recommendation]:
        """Recommendations that could apply to a patient with these diagnoses, in definition order. Remembered by hook
        and indication: patients bring the same few diagnoses call after call."""
        key = (hook, frozenset(url for url in diagnosis_valuesets if url in self._by_indication))
        known = self._candidates.get(key)
        if known is None:
            found = {id(r): r for url in key[1] for r in self._by_indication[url]}
            found.update({id(r): r for r in self._always})
            known = tuple(sorted((r for r in found.values() if hook in r.hooks), key=lambda r: self._position[id(r)]))
            if len(self._candidates) >= 4096:  # bounded: a record may hold any combination of the indications
                self._candidates.clear()
            self._candidates[key] = known
        return list(known)


#: knowledge already loaded in this process, by its files' fingerprint: a process that builds several apps from the same
#: unchanged definitions (the test suite builds hundreds) loads them once. A changed file changes the fingerprint.
_LOADED: dict[tuple, KnowledgeBase] = {}


def load(root: Path | str) -> KnowledgeBase:
    """Read, validate and index every definition under root/valuesets and root/plandefinitions."""
    root = Path(root)
    files = sorted(p for d in KNOWLEDGE_DIRS for p in (root / d).glob("*.json"))
    if not files:
        raise DefinitionError(root, "no definitions here (valuesets/, plandefinitions/); "
                                    "set IVIG_CDS_KNOWLEDGE_ROOT to the folder that holds them")
    fingerprint = (root.resolve(), tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files))
    known = _LOADED.get(fingerprint)
    if known is None:
        known = _load(root, files)
        if len(_LOADED) >= 4:  # bounded: a process rarely sees more than one set of definitions
            _LOADED.clear()
        _LOADED[fingerprint] = known
    return known


def _load(root: Path, files: list[Path]) -> KnowledgeBase:
    resources = {path.name: _read(path) for path in files}
    by_type: dict[str, list[tuple[Path, dict]]] = defaultdict(list)
    for path in files:
        by_type[resources[path.name]["resourceType"]].append((path, resources[path.name]))

    try:
        terminology = Terminology(r for _, r in by_type["ValueSet"])
        order_rules = OrderRules((r for _, r in by_type["ValueSet"]), terminology)
    except ValueError as exc:
        raise DefinitionError(root / "valuesets", str(exc)) from exc
    activities = {r["url"]: (p, r) for p, r in by_type["ActivityDefinition"]}
    regimens = {}
    for url, (path, activity) in activities.items():
        try:
            regimens[url] = regimen_from_activity(activity)
        except RegimenError as exc:
            raise DefinitionError(path, str(exc)) from exc
    libraries = {r["url"]: r for _, r in by_type["Library"]}
    for path, plan in by_type["PlanDefinition"]:
        for url in plan.get("library", []):
            if url not in libraries:
                raise DefinitionError(path, f"library {url} is not a loaded Library")
    compiler = Compiler(terminology, _base_inputs(by_type["Library"]))
    definitions = Definitions()
    recommendations = []
    for path, plan in by_type["PlanDefinition"]:
        try:
            declared = definitions.declare(plan, compiler)
        except DefinitionFault as exc:
            raise DefinitionError(path, str(exc)) from exc
        recommendations += [_recommendation(path, plan, action, compiler, declared, definitions, regimens)
                            for action in plan.get("action", [])]
    recommendations.sort(key=_order_in({r["url"]: r for _, r in by_type["CodeSystem"]}))
    _check_actions(recommendations)
    requirements = _data_requirements(by_type["PlanDefinition"], libraries, terminology)
    return KnowledgeBase(resources, terminology, recommendations, requirements, regimens.values(), order_rules, definitions)


def _check_actions(recommendations: list[Recommendation]) -> None:
    """Action ids are unique (they are the cards' topic codes); every action a decision names is a recommendation
    (not itself a decision), in one decision at most."""
    by_id: dict[str, Recommendation] = {}
    for rec in recommendations:
        if by_id.setdefault(rec.action_id, rec) is not rec:
            raise DefinitionError(rec.source_file, f"action id {rec.action_id} is used twice")
    claimed: dict[str, str] = {}
    for decision in (r for r in recommendations if r.alternatives):
        for action_id in decision.alternatives:
            other = by_id.get(action_id)
            if other is None or other.alternatives:
                raise DefinitionError(decision.source_file, f"action {decision.action_id}: decides between {action_id}, "
                                                            "which is not a recommendation")
            if claimed.setdefault(action_id, decision.action_id) != decision.action_id:
                raise DefinitionError(decision.source_file, f"action {decision.action_id}: {action_id} is already "
                                                            f"decided by {claimed[action_id]}")


def _base_inputs(libraries: list[tuple[Path, dict]]) -> set[str]:
    """The inputs the service supplies, as the Libraries document them (parameters of use "in"); they must be
    exactly the ones inputs.py computes, so neither side can drift from the other."""
    documented = {p.get("name"): path for path, library in libraries for p in library.get("parameter", []) if p.get("use") == "in"}
    for path, library in libraries:
        for parameter in library.get("parameter", []):
            if parameter.get("use") == "in" and not parameter.get("documentation"):
                raise DefinitionError(path, f"parameter {parameter.get('name')}: documentation (what the input holds) is required")
    missing, unknown = set(BASE_INPUTS) - set(documented), set(documented) - set(BASE_INPUTS)
    if missing or unknown:
        where = next(iter(documented.values()), Path("plandefinitions"))
        raise DefinitionError(where, f"Library parameters must document exactly the inputs the service supplies: "
                                     f"undocumented {sorted(missing)}, not supplied {sorted(unknown)}")
    return set(documented)


def _order_in(codesystems: dict[str, dict]) -> Callable[[Recommendation], int]:
    """Recommendations in the order their topic codes have in their CodeSystem (the guideline's order);
    a code not listed there comes after, in file order."""
    position = {(url, c["code"]): i for url, cs in codesystems.items() for i, c in enumerate(cs.get("concept", []))}
    return lambda rec: position.get((str(rec.topic.get("system")), str(rec.topic.get("code"))), len(position))  # sorted() is stable


def _data_requirements(plans: list[tuple[Path, dict]], libraries: dict[str, dict], terminology: Terminology) -> dict[str, dict]:
    """The data requirements of the Libraries the PlanDefinitions use, by element id (the prefetch key)."""
    found: dict[str, dict] = {}
    for path, plan in plans:
        for url in plan.get("library", []):
            for requirement in libraries[url].get("dataRequirement", []):
                key = requirement.get("id")
                if not key:
                    raise DefinitionError(path, f"library {url}: every dataRequirement needs an id (its prefetch key)")
                paths = [f.get("path") for f in requirement.get("codeFilter", [])] + [o.get("path") for o in requirement.get("sort", [])]
                for element in paths:
                    if element not in SEARCH_PARAMETERS:
                        raise DefinitionError(path, f"library {url}: dataRequirement {key} filters or sorts on {element!r}; "
                                                    f"the service can query {sorted(SEARCH_PARAMETERS)}")
                for flt in requirement.get("codeFilter", []):
                    if "valueSet" in flt and not terminology.knows(flt["valueSet"]):
                        raise DefinitionError(path, f"library {url}: dataRequirement {key} names unknown ValueSet {flt['valueSet']}")
                if found.setdefault(key, requirement) != requirement:
                    raise DefinitionError(path, f"dataRequirement {key} is defined differently in two Libraries")
    if plans and WEIGHT_REQUIREMENT not in found:
        raise DefinitionError(plans[0][0], f"no Library has the dataRequirement {WEIGHT_REQUIREMENT!r} the dosing weight is read from")
    return found


#: digests of definition texts the R4 model has accepted in this process: the same text needs no second check (the
#: model check is most of a load, and tests load copies of the definitions with one file changed)
_VALID_TEXTS: set[bytes] = set()


def _read(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
        resource = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DefinitionError(path, f"not readable JSON ({exc})") from exc
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(kind, str):
        raise DefinitionError(path, "no resourceType")
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    if digest not in _VALID_TEXTS:
        try:
            get_fhir_model_class(kind).model_validate(resource)
        except (KeyError, ValueError, ValidationError) as exc:
            raise DefinitionError(path, f"not a valid FHIR {kind}: {exc}") from exc
        if len(_VALID_TEXTS) >= 10_000:
            _VALID_TEXTS.clear()
        _VALID_TEXTS.add(digest)
    expected = f"{kind}-{resource.get('id')}.json"
    if path.name != expected:
        raise DefinitionError(path, f"file must be named after the resource: {expected}")
    if "url" in resource and resource["url"] != f"{CANONICAL_BASE}/{kind}/{resource['id']}":
        raise DefinitionError(path, f"url must be {CANONICAL_BASE}/{kind}/{resource['id']}")
    return resource


def _recommendation(path: Path, plan: dict, action: dict, compiler: Compiler, declared: dict[str, Any],
                    definitions: Definitions, regimens: dict[str, Regimen]) -> Recommendation:
    where = f"action {action.get('id', '?')}"

    def need(value: Any, what: str) -> Any:
        if not value:
            raise DefinitionError(path, f"{where}: {what} is required")
        return value

    need(action.get("id"), "id")
    title = need(action.get("title"), "title (the card summary)")
    if len(title) >= SUMMARY_LIMIT:
        raise DefinitionError(path, f"{where}: title must be under {SUMMARY_LIMIT} characters")
    priority = action.get("priority", "routine")
    if priority not in _PRIORITIES:
        raise DefinitionError(path, f"{where}: priority must be one of {_PRIORITIES}")
    documentation = need(action.get("documentation"), "documentation citing the guideline")[0]
    need(documentation.get("display"), "documentation[0].display (the guideline's name, shown as the card's source)")
    need(documentation.get("url"), "documentation[0].url (where the guideline is)")
    alternatives = tuple(e.get("valueId") for e in action.get("extension", []) if e.get("url") == DECIDES_BETWEEN)
    extensions = {e["url"]: e.get("valueCodeableConcept", {}).get("coding", [{}])[0] for e in action.get("extension", [])}
    if alternatives:  # it quotes the recommendations it decides between, each with its own sentence and level
        if len(set(alternatives)) < 2 or not all(alternatives):
            raise DefinitionError(path, f"{where}: decides-between needs two or more action ids")
        if STRENGTH in extensions or "citation" in documentation:
            raise DefinitionError(path, f"{where}: an action that decides between recommendations has no level or citation of its own")
        need(action.get("description"), "description (what decides between the recommendations)")
        level = DECISION_LEVEL
    else:
        need(documentation.get("citation"), "documentation[0].citation (the guideline sentence)")
        level = need(extensions.get(STRENGTH), "the cqf-strengthOfRecommendation extension (EFNS level)")
    topic = need((action.get("code") or [{}])[0].get("coding", [None])[0], "code (the recommendation's topic Coding)")
    hooks = frozenset(t["name"] for t in action.get("trigger", []) if t.get("type") == "named-event")
    need(hooks, "a named-event trigger")
    conditions: list[Condition] = []
    needed: list[str] = []
    for i, cond in enumerate(action.get("condition", [])):
        if cond.get("kind") == "applicability":
            try:
                expression = compiler.compile(cond.get("expression"), declared)
            except DefinitionFault as exc:
                raise DefinitionError(path, f"{where} condition[{i}]: {exc}") from exc
            if not expression.description:
                raise DefinitionError(path, f"{where} condition[{i}]: the expression needs a description (the condition in words)")
            order, _ = definitions.closure(expression.names)
            conditions.append(Condition(expression))
            needed += [n for n in order if n not in needed]
    _, base = definitions.closure(name for c in conditions for name in c.expression.names)
    watched = [url for c in conditions for url in c.expression.valuesets] + list(definitions.valuesets(needed))
    indications = frozenset(
        f["valueSet"] for i in action.get("input", []) if i.get("type") == "Condition" for f in i.get("codeFilter", []) if "valueSet" in f
    )
    observed = tuple(
        f["valueSet"] for i in action.get("input", []) if i.get("type") == "Observation" for f in i.get("codeFilter", []) if "valueSet" in f
    )
    for url in indications | set(observed):
        if not compiler.terminology.knows(url):
            raise DefinitionError(path, f"{where}: input names unknown ValueSet {url}")
    canonicals = [action.get("definitionCanonical")] + [sub.get("definitionCanonical") for sub in action.get("action", [])]
    chosen = []
    for url in filter(None, canonicals):
        if url not in regimens:
            raise DefinitionError(path, f"{where}: definitionCanonical {url} is not a loaded ActivityDefinition")
        chosen.append(regimens[url])
    links = tuple(a for a in plan.get("relatedArtifact", []) if a.get("type") == "documentation" and a.get("url"))
    return Recommendation(
        plan_url=plan["url"],
        action_id=action["id"],
        topic=topic,
        title=title,
        description=action.get("description", ""),
        priority=priority,
        level=level,
        evidence=extensions.get(QUALITY),
        direction=extensions.get(DIRECTION, {}).get("code"),
        documentation=documentation,
        links=links,
        hooks=hooks,
        indications=indications,
        conditions=tuple(conditions),
        watched_valuesets=tuple(dict.fromkeys(watched)),
        observed_valuesets=observed,
        inputs_used=base,
        regimens=tuple(chosen),
        selection_behavior=action.get("selectionBehavior"),
        source_file=path.name,
        alternatives=alternatives,
        shown_as=_shown_as(action, path, where),
    )


def _shown_as(action: dict, path: Path, where: str) -> str:
    codes = [e.get("valueCode") for e in action.get("extension", []) if e.get("url") == SHOWN_AS]
    if len(codes) > 1 or not set(codes) <= set(SHOWN_AS_CODES):
        raise DefinitionError(path, f"{where}: shown-as must be one valueCode of {', '.join(SHOWN_AS_CODES)}, not {codes}")
    return codes[0] if codes else "card"
