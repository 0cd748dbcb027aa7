"""Which orders are IVIG orders, the only orders this service speaks about, decided by product and route together.

The guideline covers normal human immunoglobulin given intravenously. Which products and routes that means is
knowledge, not code: each ValueSet carrying the `ivig-order-role` extension says what an order coded as one of
its members means, and its `text-pattern` extension (a case-insensitive regular expression) says which free text
names a member, since many EHRs send local codes with text only.

| role | an order whose medication (or route) is in the set ... |
|---|---|
| never-ivig | is not IVIG, whatever else it says (hyperimmune globulins); this wins |
| extravascular-product | is not IVIG (subcutaneous or intramuscular products); ordered intravenously: not licensed for the route |
| ivig | is IVIG unless a route is given that is not intravenous (products licensed for intravenous use only) |
| ivig-by-route | is IVIG only when its route is intravenous; with no route, the route decides (dual-route products) |
| intravenous-route | has an intravenous route |
| extravascular-route | has a subcutaneous or intramuscular route |

The route is read from the dosage's coded route, its text, and the words of the medication's name ("Immune
globulin intravenous"). A subcutaneous or intramuscular route makes the order no IVIG. Any other route the order
states (oral, intrathecal, inhaled: words, or a code of a system the intravenous routes are coded in) makes no IVIG
either, but it is no other product: the immunoglobulin is ordered by a route it is not given by, so the route decides
and one card asks for the route, at both hooks. So do routes that contradict each other (intravenous and
subcutaneous, or intravenous in one instruction and oral in another). A route written only as a local code without
words says nothing: the product decides.

A product licensed only for subcutaneous or intramuscular use is never IVIG; but ordered with an intravenous route (in
a dosage's route or words, not in the product's own name) it is about to be given by a route it is not licensed for,
and one card says so (the service's rule: the guideline does not address these products).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from typing import Any

from .fhirjson import obj, objects, text
from .terminology import Terminology, text_pattern

ORDER_ROLE = "http://ivig-cds.org/fhir/StructureDefinition/ivig-order-role"

#: each role an ivig-order-role extension may give, and what it means (the review document shows these words)
ROLES = {
    "never-ivig": "never IVIG, whatever the route (checked first)",
    "extravascular-product": "never IVIG; with an intravenous route, one card says the product is not licensed for the route ordered",
    "ivig": "IVIG, unless a route is given that is not intravenous (subcutaneous or intramuscular: no IVIG; any other: the route decides)",
    "ivig-by-route": "IVIG only when the route is intravenous; with no route, one card says the route decides and no dose is offered",
    "intravenous-route": "route: intravenous",
    "extravascular-route": "route: subcutaneous or intramuscular",
}
_MEDICATION_RECORDS = ("MedicationRequest", "MedicationAdministration")
#: words of a route that name no route ("Infusion", "Injection", "Parenteral"): a route in these words alone is no
#: route other than intravenous, so the product decides (an intravenous-only product "by infusion" stays IVIG)
_NEUTRAL_ROUTE_WORDS = re.compile(r"\b(?:infusion|injection|inj|parenteral|route|use|administration|of)\b", re.IGNORECASE)


class OrderKind(Enum):
    IVIG = "ivig"
    ROUTE_DECIDES = "route-decides"  # normal immunoglobulin that is IVIG only if given intravenously, and no route
    ROUTE_NOT_LICENSED = "route-not-licensed"  # a subcutaneous or intramuscular product ordered intravenously
    OTHER = "other"


class OrderRules:
    """The product and route rules of the ValueSets that carry an `ivig-order-role`, ready to classify orders."""

    def __init__(self, valuesets: Iterable[Mapping[str, Any]], terminology: Terminology):
        """Raises ValueError naming the ValueSet whose role or pattern cannot be used."""
        self._terminology = terminology
        self._valuesets: dict[str, set[str]] = {role: set() for role in ROLES}
        self._patterns: dict[str, list[re.Pattern[str]]] = {role: [] for role in ROLES}
        self._example: dict | None = None
        self._route_systems: set[str] = set()  # the code systems intravenous routes are coded in: a route in them is stated
        for valueset in valuesets:
            extensions = {e.get("url"): e for e in objects(valueset.get("extension"))}
            role = text(extensions.get(ORDER_ROLE, {}).get("valueCode"))
            if role is None:
                continue
            if role not in ROLES:
                raise ValueError(f"ValueSet {valueset.get('id')}: ivig-order-role {role!r} is not one of {tuple(ROLES)}")
            self._valuesets[role].add(valueset["url"])
            pattern = text_pattern(valueset)
            if pattern is not None:
                self._patterns[role].append(pattern)
            if role == "intravenous-route":
                contains = objects(obj(valueset.get("expansion")).get("contains"))
                self._route_systems |= {c["system"] for c in contains if text(c.get("system"))}
            if role == "ivig" and self._example is None and valueset.get("expansion", {}).get("contains"):
                self._example = dict(valueset["expansion"]["contains"][0])
        if self._example is None:
            raise ValueError("no ValueSet with ivig-order-role 'ivig' and an expansion: nothing could be recognised as IVIG")

    @property
    def example_coding(self) -> dict:
        """A coding of an IVIG product, for an order the client did not send (PlanDefinition/$apply)."""
        return dict(self._example or {})

    def kind(self, order: Any) -> OrderKind:
        """IVIG, ROUTE_DECIDES or OTHER, for a MedicationRequest (a draft or an earlier course) or MedicationAdministration."""
        if not isinstance(order, Mapping) or order.get("resourceType") not in _MEDICATION_RECORDS:
            return OrderKind.OTHER
        concepts = medication_concepts(order)
        if not concepts:
            return OrderKind.OTHER
        # the words are matched joined, as one name (a pattern may span a text and a display); the terminology
        # remembers which ValueSets' patterns a text matches, so a product's name is searched once per process
        name = " ".join(t for concept in concepts for t in _texts(concept))
        coded = self._terminology.codings_in(concepts) | self._terminology.named_by(name)

        def product(role: str) -> bool:
            return bool(coded & self._valuesets[role])

        if product("never-ivig"):
            return OrderKind.OTHER
        instructions = _instructions(order)
        routes = [obj(i.get("route")) for i in instructions]
        instruction_words = " ".join(t for i in instructions for t in _instruction_texts(i))
        if product("extravascular-product"):  # its name says subcutaneous: only the dosage's route can say intravenous
            ordered = self._terminology.codings_in(routes) | self._terminology.named_by(instruction_words)
            intravenous_ordered = bool(ordered & self._valuesets["intravenous-route"])
            return OrderKind.ROUTE_NOT_LICENSED if intravenous_ordered else OrderKind.OTHER
        licensed_iv_only = product("ivig")
        if not licensed_iv_only and not product("ivig-by-route"):
            return OrderKind.OTHER
        route_coded = (self._terminology.codings_in(routes)
                       | self._terminology.named_by(" ".join(filter(None, (name, instruction_words)))))

        def route(role: str) -> bool:
            return bool(route_coded & self._valuesets[role])

        intravenous, extravascular = route("intravenous-route"), route("extravascular-route")
        if extravascular:
            return OrderKind.ROUTE_DECIDES if intravenous or any(self._other_route(r) for r in routes) else OrderKind.OTHER
        if any(self._other_route(r) for r in routes):
            return OrderKind.ROUTE_DECIDES
        return OrderKind.IVIG if intravenous or licensed_iv_only else OrderKind.ROUTE_DECIDES

    def _other_route(self, route: Mapping[str, Any]) -> bool:
        """Does a dosage's route state a route (in words, or coded in a route code system we know) that is neither
        intravenous nor subcutaneous or intramuscular?"""
        words = " ".join(_texts(route))
        named = _NEUTRAL_ROUTE_WORDS.sub("", words).strip(" .,;:-/()")
        stated = bool(named) or any(c.get("system") in self._route_systems and text(c.get("code")) for c in objects(route.get("coding")))
        if not stated:
            return False
        coded = self._terminology.codings_in(route) | self._terminology.named_by(words)
        return not coded & (self._valuesets["intravenous-route"] | self._valuesets["extravascular-route"])

    def is_ivig(self, order: Any) -> bool:
        return self.kind(order) is OrderKind.IVIG

    def describe(self) -> list[tuple[str, list[str], list[str]]]:
        """(role, ValueSet urls, text patterns) for the review document."""
        return [(role, sorted(self._valuesets[role]), [p.pattern for p in self._patterns[role]]) for role in ROLES]


def medication_concepts(order: Mapping[str, Any]) -> list[dict]:
    """The CodeableConcepts naming a MedicationRequest's medication: its medicationCodeableConcept; or, through a
    contained Medication, that Medication's code and each ingredient's item, since a pharmacy's compounded or local
    product is often named only by its ingredients ("IG compound": immunoglobulin G; "Immune globulin 1500 IU":
    Rho(D) immune globulin); or the display of a Medication reference. Empty when nothing names it."""
    concept = order.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return [concept]
    reference = obj(order.get("medicationReference"))
    target = text(reference.get("reference")) or ""
    if target.startswith("#"):
        for contained in objects(order.get("contained")):
            if contained.get("resourceType") == "Medication" and contained.get("id") == target[1:]:
                named = [obj(contained.get("code")), *(obj(i.get("itemCodeableConcept")) for i in objects(contained.get("ingredient")))]
                return [c for c in named if c]
    display = text(reference.get("display"))
    return [{"text": display}] if display else []


def _texts(concept: Mapping[str, Any]) -> Iterator[str]:
    if text(concept.get("text")):
        yield concept["text"]
    for coding in objects(concept.get("coding")):
        if text(coding.get("display")):
            yield coding["display"]


def _instructions(order: Mapping[str, Any]) -> list[dict]:
    """A request's dosage instructions, or an administration's one dosage."""
    return objects(order.get("dosageInstruction")) or objects([order.get("dosage")])


def _instruction_texts(instruction: Mapping[str, Any]) -> Iterator[str]:
    if text(instruction.get("text")):
        yield instruction["text"]
    yield from _texts(obj(instruction.get("route")))
