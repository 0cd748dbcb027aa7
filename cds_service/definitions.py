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
from decimal import Decimal
from typing import Any, TypeVar

import fhirpathpy
from fhirpathpy.models import models

from .fhirjson import element
from .terminology import ConceptIndex, Terminology

VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
#: names every FHIRPath engine supplies itself
ENVIRONMENT = frozenset({"context", "resource", "rootResource", "ucum", "sct", "loinc"})
_NAME = re.compile(r"%([A-Za-z]\w*)")
_MEMBER_OF = re.compile(r"memberOf\(\s*'([^']+)'\s*\)")
_MEMBERSHIP = re.compile(r"^%([A-Za-z]\w*)\.where\(([A-Za-z]\w*)\.memberOf\('([^']+)'\)(\.not\(\))?\)(\.first\(\))?$")
_THRESHOLD = re.compile(r"^%([A-Za-z]\w*)\.where\(([A-Za-z]\w*(?:\.[A-Za-z]\w*)*)\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\)$")
#: the FHIR R4 model fhirpathpy navigates by: which elements are choices (value[x]) and what type each path has
_R4 = models["r4"]

Compiled = Callable[[dict, Mapping[str, Any]], list]


class DefinitionFault(ValueError):
    """An expression the loader will not accept; the loader adds the file it came from."""


@dataclass(frozen=True)
class Membership:
    """`%base.where(element.memberOf('url'))`, with `.first()` when `first`; `.memberOf('url').not()` when `outside`:
    the records whose element is there and not in the ValueSet (FHIRPath's `.not()` of an absent element is empty,
    and `where` drops the record)."""

    base: str
    element: str
    url: str
    first: bool
    outside: bool = False

    def __call__(self, values: Mapping[str, Any], index: ConceptIndex) -> list:
        records = values[self.base]
        if not isinstance(records, list):  # no base input is; answered as FHIRPath would walk it, all the same
            found = [r for r in records if isinstance(r, dict) and index.member_of(element(r, self.element), self.url)]
        else:
            found = index.grouped(records, self.element, self._concept).get(self.url, [])
        if self.outside:
            inside = {id(r) for r in found}
            found = [r for r in records if id(r) not in inside and self._concept(r) is not None]
        return found[:1] if self.first else list(found)

    def _concept(self, record: Any) -> Any:
        return element(record, self.element) if isinstance(record, dict) else None


@dataclass(frozen=True)
class Threshold:
    """`%base.where(path < number)` (or <=, >, >=): the records whose element at `path` is above or below a number.

    fhirpathpy spends a tenth of a millisecond setting up for this on each call; this walks the records itself, and
    answers only when it is sure to give fhirpathpy's answer: each record a resource whose path (a choice element
    such as value[x] resolved by the R4 model, as fhirpathpy does) leads through objects to at most one number. On
    anything else (a list or text where a number goes, an element with an extension only, an unknown type) it gives
    None, and fhirpathpy answers, raising on bad data as it always did."""

    base: str
    path: tuple[str, ...]
    operator: str
    literal: Decimal

    def __call__(self, resolve: Callable[[str], Any]) -> Answer:
        kept = []
        for item in _as_list(resolve(self.base)):
            record = getattr(item, "data", item)
            if not isinstance(record, dict) or not isinstance(record.get("resourceType"), str):
                return None
            value = self._value(record)
            if value is _UNSURE:
                return None
            if value is not _ABSENT and _ORDER[self.operator](value, self.literal):
                kept.append(item)
        return kept

    def _value(self, record: dict) -> Any:
        node: Any = record
        kind: str | None = record["resourceType"]
        for at, name in enumerate(self.path):
            if not isinstance(node, dict) or "_" + name in node:
                return _UNSURE
            choices = _R4["choiceTypePaths"].get(f"{kind}.{name}")
            if choices is None:
                node, kind = node.get(name, _ABSENT), _R4["path2Type"].get(f"{kind}.{name}")
            else:
                present = [t for t in choices if name + t in node]
                if len(present) > 1:
                    return _UNSURE
                node, kind = (node[name + present[0]], present[0]) if present else (_ABSENT, None)
            if node is _ABSENT:
                return _ABSENT
            if kind is None and at < len(self.path) - 1:
                return _UNSURE
        if isinstance(node, bool) or not isinstance(node, (int, float, Decimal)):
            return _UNSURE
        return node


_ABSENT, _UNSURE = object(), object()
_ORDER: dict[str, Callable[[Any, Decimal], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Expression:
    """A compiled FHIRPath expression with what it reads."""

    text: str
    description: str
    names: frozenset[str]  # the %names it reads
    valuesets: tuple[str, ...]  # the ValueSets its memberOf() calls name, in order
    run: Compiled
    membership: Membership | None = None  # the same expression, answered from the call's index
    logic: Logic | None = None  # the same expression, when it is only logic over named facts
    empty_from: str | None = None  # a name whose empty collection makes the answer empty (%x.where(...).first())
    threshold: Threshold | None = None  # the same expression, when it compares one number of each record

    def __call__(self, values: Mapping[str, Any], index: ConceptIndex | None = None) -> list:
        """The answer with every name it reads already in `values`."""
        return self.evaluate(values, index, values.__getitem__)

    def evaluate(self, values: Mapping[str, Any], index: ConceptIndex | None, resolve: Callable[[str], Any]) -> list:
        """The answer, asking `resolve` for each named fact when it is needed: logic stops at the first operand that
        decides (`false and ...`), and a path over an empty fact is empty, so the facts behind the rest are never
        computed. fhirpathpy, the general path, gets every name it reads."""
        if self.membership is not None and index is not None:
            return self.membership(values, index)
        if self.logic is not None and (answer := self.logic(resolve)) is not None:
            return answer
        if self.empty_from is not None and not _items(resolve(self.empty_from)):
            return []
        if self.threshold is not None and (answer := self.threshold(resolve)) is not None:
            return answer
        for name in self.names:
            resolve(name)
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
            membership = Membership(match.group(1), match.group(2), match.group(3), bool(match.group(5)), bool(match.group(4)))
        threshold = None
        if (found := _THRESHOLD.match(text)) is not None:
            threshold = Threshold(found.group(1), tuple(found.group(2).split(".")), found.group(3), Decimal(found.group(4)))
        return Expression(text, expression.get("description", ""), names, valuesets, run, membership, Logic.parse(text),
                          _empty_from(text), threshold)


Answer = list | None  # a FHIRPath collection, or None: not answerable here, ask fhirpathpy
_Run = Callable[[Callable[[str], Any]], Answer]  # an answer from a way to look a fact up by name
#: FHIRPath functions whose answer on an empty collection is empty
_EMPTY_IN_EMPTY_OUT = frozenset({"where", "select", "first", "last", "tail", "ofType", "toString", "substring", "toDate",
                                 "toDateTime", "distinct"})


def _empty_from(text: str) -> str | None:
    """For `%x.f(...).g(...)` where every function keeps an empty collection empty: x; else None."""
    match = re.match(r"%([A-Za-z]\w*)\.", text)
    if match is None:
        return None
    segments, depth, quoted, start = [], 0, False, match.end()
    for at in range(match.end(), len(text)):
        char = text[at]
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
        elif not quoted and char in ")]":
            depth -= 1
        elif not quoted and depth == 0 and char == ".":
            segments.append(text[start:at])
            start = at + 1
    segments.append(text[start:])
    for segment in segments:
        call = re.fullmatch(r"([A-Za-z]\w*)\(.*\)", segment, re.S)
        if call is None or call.group(1) not in _EMPTY_IN_EMPTY_OUT:
            return None
    return match.group(1)


class Logic:
    """A condition that is only logic over named facts, evaluated without fhirpathpy: `%a.exists()`, `%b.empty()`,
    `%c` (a boolean), `%d < 18`, `%hook = 'order-sign'`, `%e > %f * (1 + %g)` (+ and * on numbers), joined by `and`,
    `or`, `.not()` and parentheses, with FHIRPath's three-valued logic; and `iif(criterion, a, b)` choosing between
    facts as they are (`iif(%x.exists(), %x, %y)`). A branch that computes (`%z.aggregate(...)`) is fhirpathpy's,
    when the criterion chooses it. Most conditions are of this shape once the facts are named, and fhirpathpy spends
    far longer setting up than deciding them. Whatever it cannot decide exactly (a fact that is not a boolean where one
    is read, a collection of several where one value is compared), it leaves to fhirpathpy; the tests compare both
    on every catalogue patient."""

    _TOKEN = re.compile(r"\s*(?:(%[A-Za-z]\w*)|(\.exists\(\)|\.empty\(\)|\.not\(\))|(and|or)\b|([()])|(<=|>=|<|>|=)"
                        r"|(-?\d+(?:\.\d+)?)|'([^'\\]*)'|(true|false)\b|([*+])|(iif\()|(,)|(\.aggregate\([^()]*\)))")

    def __init__(self, run: _Run):
        self._run = run

    def __call__(self, resolve: Callable[[str], Any]) -> Answer:
        return self._run(resolve)

    @classmethod
    def parse(cls, text: str) -> Logic | None:
        tokens, at = [], 0
        while at < len(text.rstrip()):
            match = cls._TOKEN.match(text, at)
            if match is None:
                return None
            tokens.append(match)
            at = match.end()
        parser = _LogicParser(tokens)
        try:
            run = parser.expression()
        except _NotLogic:
            return None
        return cls(run) if parser.done() else None


_T = TypeVar("_T")


class _NotLogic(Exception):
    pass


class _LogicParser:
    """Recursive descent over the tokens of Logic, building closures; the grammar is FHIRPath's, restricted."""

    def __init__(self, tokens: list[re.Match]):
        self.tokens, self.at = tokens, 0

    def done(self) -> bool:
        return self.at == len(self.tokens)

    def _peek(self, group: int) -> str | None:
        return self.tokens[self.at].group(group) if self.at < len(self.tokens) else None

    def _take(self, group: int) -> str:
        value = self._peek(group)
        if value is None:
            raise _NotLogic
        self.at += 1
        return value

    def expression(self) -> _Run:
        run = self._and()
        while self._peek(3) == "or":
            self.at += 1
            run = _junction(run, self._and(), decisive=True)
        return run

    def _and(self) -> _Run:
        run = self._unary()
        while self._peek(3) == "and":
            self.at += 1
            run = _junction(run, self._unary(), decisive=False)
        return run

    def _unary(self) -> _Run:
        if self._peek(4) == "(":
            run = self._grouped(self.expression)
        elif self._peek(10) is not None:
            run = self._iif()
        else:
            run = self._fact()
        while self._peek(2) == ".not()":
            self.at += 1
            run = _not(run)
        return run

    def _iif(self) -> _Run:
        """`iif(criterion, then, otherwise)`, at `iif(`: FHIRPath's choice (an empty or false criterion chooses
        otherwise); only the chosen branch is computed."""
        self.at += 1
        criterion = self.expression()
        self._take(11)
        then = self._branch()
        self._take(11)
        otherwise = self._branch()
        if self._take(4) != ")":
            raise _NotLogic
        return _choice(criterion, then, otherwise)

    def _branch(self) -> _Run:
        """A branch of iif: a fact as it is (its whole collection), a computation left to fhirpathpy, or logic."""
        name = self._peek(1)
        if name is not None and self.at + 1 < len(self.tokens):
            following = self.tokens[self.at + 1]
            if following.group(12) is not None:  # %x.aggregate(...)
                self.at += 2
                return lambda resolve: None
            if following.group(11) is not None or following.group(4) == ")":
                self.at += 1
                return lambda resolve: _collection(resolve(name[1:]))
        return self.expression()

    def _grouped(self, inner: Callable[[], _T]) -> _T:
        """`( inner )`, at an opening parenthesis."""
        self.at += 1
        run = inner()
        if self._take(4) != ")":
            raise _NotLogic
        return run

    def _fact(self) -> _Run:
        name = self._take(1)[1:]
        suffix = self._peek(2)
        if suffix in (".exists()", ".empty()"):
            self.at += 1
            wanted = suffix == ".exists()"
            return lambda resolve: [_present(resolve(name)) is wanted]
        operator = self._peek(5)
        if operator is None:
            return lambda resolve: _boolean(resolve(name))
        self.at += 1
        if not self._arithmetic_follows():
            literal = self._literal()
            return lambda resolve: _compare(resolve(name), operator, literal)
        computed = self._sum()
        return lambda resolve: _compare_numbers(resolve(name), operator, computed(resolve))

    def _arithmetic_follows(self) -> bool:
        """Is the right side of a comparison arithmetic (`%b * (1 + %c)`) rather than one literal?"""
        if self._peek(1) is not None or self._peek(4) == "(":
            return True
        return self.at + 1 < len(self.tokens) and self.tokens[self.at + 1].group(9) is not None

    def _sum(self) -> _Number:
        run = self._product()
        while self._peek(9) == "+":
            self.at += 1
            run = _arithmetic(run, self._product(), lambda a, b: a + b)
        return run

    def _product(self) -> _Number:
        run = self._operand()
        while self._peek(9) == "*":
            self.at += 1
            run = _arithmetic(run, self._operand(), lambda a, b: a * b)
        return run

    def _operand(self) -> _Number:
        if self._peek(4) == "(":
            return self._grouped(self._sum)
        if (name := self._peek(1)) is not None:
            self.at += 1
            return lambda resolve: _number(resolve(name[1:]))
        number = Decimal(self._take(6))
        return lambda resolve: number

    def _literal(self) -> Any:
        if self.at >= len(self.tokens):
            raise _NotLogic
        token = self.tokens[self.at]
        self.at += 1
        if token.group(6) is not None:
            return Decimal(token.group(6))
        if token.group(7) is not None:
            return token.group(7)
        if token.group(8) is not None:
            return token.group(8) == "true"
        raise _NotLogic


def _items(value: Any) -> list:
    items = value if isinstance(value, list) else [value]
    return [getattr(item, "data", item) for item in items]  # fhirpathpy's raw answers wrap resources


def _present(value: Any) -> bool:
    """FHIRPath's exists() of a fact: a value that is not a collection is one item."""
    return len(value) > 0 if isinstance(value, list) else True


def _boolean(value: Any) -> Answer:
    items = _items(value)
    if not items:
        return []
    return [items[0]] if len(items) == 1 and isinstance(items[0], bool) else None


def _compare(value: Any, operator: str, literal: Any) -> Answer:
    items = _items(value)
    if not items:
        return []
    if len(items) > 1:
        return None
    item = items[0]
    if isinstance(literal, Decimal):
        if isinstance(item, bool) or not isinstance(item, (int, float, Decimal)):
            return None
        item = Decimal(str(item)) if isinstance(item, float) else item
    elif type(item) is not type(literal):
        return None
    if operator == "=":
        return [item == literal]
    if isinstance(literal, (bool, str)):
        return None
    return [{"<": item < literal, ">": item > literal, "<=": item <= literal, ">=": item >= literal}[operator]]


_Number = Callable[[Callable[[str], Any]], Any]  # a number (int or Decimal), _EMPTY or _UNSURE, from facts by name
_EMPTY = object()


def _number(value: Any) -> Any:
    """A fact as an operand of FHIRPath arithmetic: its one number, _EMPTY, or _UNSURE for anything fhirpathpy should
    judge (several items, text, a boolean, a float, whose arithmetic fhirpathpy does its own way)."""
    items = _items(value)
    if not items:
        return _EMPTY
    item = items[0]
    if len(items) > 1 or isinstance(item, bool) or not isinstance(item, (int, Decimal)):
        return _UNSURE
    return item


def _arithmetic(left: _Number, right: _Number, operate: Callable[[Any, Any], Any]) -> _Number:
    """FHIRPath + or * on numbers, as fhirpathpy computes it (Python's int and Decimal arithmetic): empty when an
    operand is empty."""
    def answer(resolve: Callable[[str], Any]) -> Any:
        a, b = left(resolve), right(resolve)
        if a is _UNSURE or b is _UNSURE:
            return _UNSURE
        if a is _EMPTY or b is _EMPTY:
            return _EMPTY
        return operate(a, b)
    return answer


def _compare_numbers(value: Any, operator: str, computed: Any) -> Answer:
    """A fact compared with computed arithmetic; None (ask fhirpathpy) unless both are numbers or empty."""
    left = _number(value)
    if left is _UNSURE or computed is _UNSURE:
        return None
    if left is _EMPTY or computed is _EMPTY:
        return []
    return [_ORDER[operator](left, computed)] if operator in _ORDER else [left == computed]


def _collection(value: Any) -> Answer:
    """A fact as FHIRPath gives it back (a value that is not a collection is one item); None (ask fhirpathpy) unless
    every item is a boolean, a number (int or Decimal: fhirpathpy gives floats back as Decimals or floats, as asked) or
    text."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    return list(items) if all(isinstance(item, (bool, int, Decimal, str)) for item in items) else None


def _choice(criterion: _Run, then: _Run, otherwise: _Run) -> _Run:
    def answer(resolve: Callable[[str], Any]) -> Answer:
        decided = criterion(resolve)
        if decided is None:
            return None
        return then(resolve) if decided == [True] else otherwise(resolve)
    return answer


def _not(run: _Run) -> _Run:
    def answer(resolve: Callable[[str], Any]) -> Answer:
        got = run(resolve)
        if got is None or got == []:
            return got
        return [not got[0]] if isinstance(got[0], bool) and len(got) == 1 else None
    return answer


def _junction(left: _Run, right: _Run, decisive: bool) -> _Run:
    """`and` (decisive False) or `or` (decisive True) in FHIRPath's three-valued logic: an operand equal to the
    decisive value decides, whatever the other is (so the other need not be computed); both the other value give
    that value; anything else is unknown (empty)."""
    def answer(resolve: Callable[[str], Any]) -> Answer:
        a = left(resolve)
        if a == [decisive]:
            return [decisive]
        b = right(resolve)
        if a is None or b is None:
            return None
        if b == [decisive]:
            return [decisive]
        return [not decisive] if a == [not decisive] and b == [not decisive] else []
    return answer


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
        """Sets values[name], once per call, evaluating first (and only) the facts it turns out to need."""
        self.resolver(values, index)(name)

    def resolver(self, values: dict[str, Any], index: ConceptIndex) -> Callable[[str], Any]:
        """Look a fact up by name in `values`, evaluating a named definition the first time it is asked for (and the
        facts it reads through the same lookup). One per call serves every recommendation of the call."""
        return _Resolver(self._by_name, values, index).resolve


@dataclass(frozen=True)
class _Resolver:
    """Definitions.resolver's lookup: a method, where a closure that passes itself on would be a reference cycle, which
    keeps the call's facts (a long record's) alive until the cyclic collector runs (tests/test_collector.py)."""

    by_name: Mapping[str, Definition]
    values: dict[str, Any]
    index: ConceptIndex

    def resolve(self, name: str) -> Any:
        if name not in self.values:
            self.values[name] = self.by_name[name].expression.evaluate(self.values, self.index, self.resolve)
        return self.values[name]
