"""Named definitions: the facts a recommendation's conditions read, each declared once and evaluated at most once per call.

The knowledge declares them with the standard FHIR `variable` extension (an Expression with a name, FHIRPath and a
description) on each PlanDefinition, over the base inputs the Library documents as parameters (the facts Python
supplies: the record sorted by status, the draft orders' dose arithmetic, settings). A condition then reads like the
guideline ("%gbsDiagnosis.exists()") and a reviewer reads each definition once.

A name means one thing everywhere: two PlanDefinitions may declare the same name (each file stays importable on its
own) only with the same expression, so a call evaluates it once for all of them. Evaluation is lazy: a call computes
only the definitions the candidate recommendations need, in dependency order, and keeps each value for the call.

Membership definitions (`%base.where(element.memberOf('url'))`, optionally `.first()`, over a base input) are the
common, costly shape: fhirpathpy walks the collection item by item. They are answered from the call's ConceptIndex
directly, which gives the same collection (the tests compare both paths, and an independent FHIRPath engine, on the
test patients), and each record's codes are looked up once per call, whichever definitions ask.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fhirpathpy
from fhirpathpy.models import models

from .terminology import ConceptIndex, Terminology

VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
#: names every FHIRPath engine supplies itself
ENVIRONMENT = frozenset({"context", "resource", "rootResource", "ucum", "sct", "loinc"})
_NAME = re.compile(r"%([A-Za-z]\w*)")
_MEMBER_OF = re.compile(r"memberOf\(\s*'([^']+)'\s*\)")
_MEMBERSHIP = re.compile(r"^%([A-Za-z]\w*)\.where\(([A-Za-z]\w*)\.memberOf\('([^']+)'\)\)(\.first\(\))?$")

Compiled = Callable[[dict, Mapping[str, Any]], list]


class DefinitionFault(ValueError):
    """An expression the loader will not accept; the loader adds the file it came from."""


@dataclass(frozen=True)
class Membership:
    """`%base.where(element.memberOf('url'))`, with `.first()` when `first`."""

    base: str
    element: str
    url: str
    first: bool

    def __call__(self, values: Mapping[str, Any], index: ConceptIndex) -> list:
        found = (r for r in values[self.base] if isinstance(r, dict) and index.member_of(_element(r, self.element), self.url))
        return list(found)[:1] if self.first else list(found)


@dataclass(frozen=True)
class Expression:
    """A compiled FHIRPath expression with what it reads."""

    text: str
    description: str
    names: frozenset[str]  # the %names it reads
    valuesets: tuple[str, ...]  # the ValueSets its memberOf() calls name, in order
    run: Compiled
    membership: Membership | None = None  # the same expression, answered from the call's index

    def __call__(self, values: Mapping[str, Any], index: ConceptIndex | None = None) -> list:
        if self.membership is not None and index is not None:
            return self.membership(values, index)
        return self.run({}, values)  # fhirpathpy copies the variables it is given


@dataclass(frozen=True)
class Definition:
    """A named fact: its expression, and the names (definitions and base inputs) it rests on."""

    name: str
    expression: Expression


class Compiler:
    """Compiles FHIRPath once, with memberOf() answered by our terminology."""

    def __init__(self, terminology: Terminology, base_names: Iterable[str]):
        self.terminology = terminology
        self.base_names = frozenset(base_names)

        def member_of(collection: list, url: str) -> list[bool]:
            return [terminology.member_of(item, url) for item in collection]

        table = {"memberOf": {"fn": member_of, "arity": {1: ["String"]}}}
        self._options = {"userInvocationTable": table}
        self._raw_options = {"userInvocationTable": table, "returnRawData": True}  # keeps FHIRPath types for later use

    def compile(self, expression: Any, declared: Iterable[str], *, keep_types: bool = False) -> Expression:
        """An Expression element, checked: FHIRPath, every %name declared, every ValueSet loaded, evaluates on empty data."""
        if not isinstance(expression, dict) or expression.get("language") != "text/fhirpath":
            raise DefinitionFault("the expression language must be text/fhirpath")
        text = expression.get("expression")
        if not isinstance(text, str) or not text.strip():
            raise DefinitionFault("the expression is empty")
        names = frozenset(_NAME.findall(text)) - ENVIRONMENT
        unknown = names - set(declared) - self.base_names
        if unknown:
            raise DefinitionFault(f"FHIRPath {text!r} reads {', '.join('%' + n for n in sorted(unknown))}, declared neither "
                                  "as a named definition before it nor as a Library parameter")
        valuesets = tuple(dict.fromkeys(_MEMBER_OF.findall(text)))
        for url in valuesets:
            if not self.terminology.knows(url):
                raise DefinitionFault(f"memberOf('{url}') names no loaded ValueSet")
        try:
            run = fhirpathpy.compile(text, models["r4"], self._raw_options if keep_types else self._options)
            run({}, {name: [] for name in names})
        except Exception as exc:  # fhirpathpy raises bare Exceptions for syntax errors
            raise DefinitionFault(f"FHIRPath {text!r} does not evaluate: {exc}") from exc
        match = _MEMBERSHIP.match(text)
        membership = None
        if match is not None and match.group(1) in self.base_names:
            membership = Membership(match.group(1), match.group(2), match.group(3), bool(match.group(4)))
        return Expression(text, expression.get("description", ""), names, valuesets, run, membership)


def _element(resource: dict, name: str) -> Any:
    """An element by its FHIRPath name: a choice element (medication[x]) by any of its typed names."""
    if name in resource:
        return resource[name]
    return next((v for k, v in resource.items() if k.startswith(name) and k[len(name):][:1].isupper()), None)


class Definitions:
    """Every named definition of the knowledge, by name; one meaning per name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Definition] = {}

    def declare(self, plan: dict, compiler: Compiler) -> dict[str, Definition]:
        """A PlanDefinition's `variable` extensions, in order (each may read the ones before it)."""
        declared: dict[str, Definition] = {}
        for extension in plan.get("extension", []):
            if extension.get("url") != VARIABLE:
                continue
            expression = extension.get("valueExpression") or {}
            name = expression.get("name")
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z]\w*", name):
                raise DefinitionFault(f"a variable needs a FHIRPath name, not {name!r}")
            if name in compiler.base_names or name in declared:
                raise DefinitionFault(f"variable {name} is declared twice (or is a Library parameter)")
            if not expression.get("description"):
                raise DefinitionFault(f"variable {name} needs a description (what the fact is, in words)")
            definition = Definition(name, compiler.compile(expression, declared, keep_types=True))
            known = self._by_name.setdefault(name, definition)
            if known.expression.text != definition.expression.text:
                raise DefinitionFault(f"variable {name} means {known.expression.text!r} elsewhere; one name, one meaning")
            declared[name] = known
        return declared

    def __iter__(self) -> Iterator[Definition]:
        return iter(self._by_name.values())

    def closure(self, names: Iterable[str]) -> tuple[tuple[str, ...], frozenset[str]]:
        """The definitions these names rest on, in an order where each comes after what it reads, and the base
        inputs they read in the end."""
        order: list[str] = []
        base: set[str] = set()

        def visit(name: str) -> None:
            definition = self._by_name.get(name)
            if definition is None:
                base.add(name)
            elif name not in order:
                for used in sorted(definition.expression.names):
                    visit(used)
                order.append(name)

        for name in sorted(names):
            visit(name)
        return tuple(order), frozenset(base)

    def valuesets(self, names: Iterable[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(url for n in names for url in self._by_name[n].expression.valuesets))

    def evaluate(self, name: str, values: dict[str, Any], index: ConceptIndex) -> None:
        """Sets values[name], once: the caller passes names in closure order."""
        if name not in values:
            values[name] = self._by_name[name].expression(values, index)
