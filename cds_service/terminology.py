"""ValueSet membership, answered from the ValueSets we ship.

fhirpathpy has no terminology functions, so `memberOf()` in our FHIRPath conditions is
served from here. Membership is decided from each ValueSet's expansion, plus the `is-a`
filters of its compose for code systems whose hierarchy is spelled in the code itself
(ICD-10, ICD-10-CM, ATC): a patient's `I26.99` is a descendant of the verified category
`I26` without us having to enumerate every billable child. A ValueSet may also name its
members in words (its `text-pattern` extension): medication orders often carry only product
codes we cannot verify (RxNorm SCDs, local codes) or a reference with a display, and the name
is then the only thing that says what the product is.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .fhirjson import objects

ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ATC = "http://www.whocc.no/atc"
NDC = "http://hl7.org/fhir/sid/ndc"

#: A compose concept broader than its ValueSet's meaning (a WHO ICD-10 category holding the disease and others)
#: carries this extension; its valueString names the code, its title and what else it covers.
BROADER_CODE = "http://ivig-cds.org/fhir/StructureDefinition/broader-code"

#: On a ValueSet: a case-insensitive regular expression over a concept's words (its text, its codings' displays, a
#: reference's display) that names a member.
TEXT_PATTERN = "http://ivig-cds.org/fhir/StructureDefinition/text-pattern"

#: Code systems in which a descendant's code starts with its ancestor's code.
PREFIX_HIERARCHIES = frozenset({ICD10, ICD10CM, ATC})


def _normalise(system: str, code: str) -> str:
    """A comparable form of a code: ICD codes without the dot, NDCs as labeler-product."""
    code = code.strip()
    if system in (ICD10, ICD10CM):
        return code.replace(".", "").upper()
    if system == NDC:
        return ndc_product(code) or code
    return code


def ndc_product(code: str) -> str | None:
    """The 5-4 labeler-product part of an NDC, so that package codes match product codes.

    Product codes in our ValueSets come as 4-4, 5-3 or 5-4 (e.g. ``0944-2700``); EHRs send
    package codes, hyphenated (``0944-2700-02``) or as 11 digits (``00944270002``).
    An unhyphenated 10-digit code is ambiguous and is left alone.
    """
    parts = code.strip().split("-")
    if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
        labeler, product = parts[0], parts[1]
        if len(labeler) <= 5 and len(product) <= 4:
            return f"{labeler.zfill(5)}-{product.zfill(4)}"
        return None
    if len(parts) == 1 and parts[0].isdigit() and len(parts[0]) == 11:
        return f"{parts[0][:5]}-{parts[0][5:9]}"
    return None


def text_pattern(valueset: Mapping[str, Any]) -> re.Pattern[str] | None:
    """A ValueSet's text-pattern, compiled; ValueError naming the ValueSet when it is not a regular expression."""
    words = next((e.get("valueString") for e in objects(valueset.get("extension")) if e.get("url") == TEXT_PATTERN), None)
    if not isinstance(words, str) or not words:
        return None
    try:
        return re.compile(words, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"ValueSet {valueset.get('id')}: text-pattern is not a regular expression: {exc}") from exc


class Terminology:
    """Answers "is this coding in that ValueSet?" for the ValueSets loaded at start-up."""

    def __init__(self, valuesets: Iterable[Mapping[str, Any]]):
        self._exact: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._prefixes: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._urls: set[str] = set()
        self._memo: dict[tuple[str, str], frozenset[str]] = {}  # (system, code) -> ValueSets; codes recur across calls
        self._broader: dict[str, dict[tuple[str, str], str]] = defaultdict(dict)  # url -> (system, code) -> note
        self._words: list[tuple[re.Pattern[str], str]] = []  # (text-pattern, url)
        self._words_memo: dict[str, frozenset[str]] = {}  # words -> the ValueSets they name
        for valueset in valuesets:
            self._add(valueset)
        # one search tells whether any ValueSet's words are in a text at all: most texts (labs, diagnoses) name none
        self._any_words = re.compile("|".join(f"(?:{p.pattern})" for p, _ in self._words), re.IGNORECASE) if self._words else None

    def _add(self, valueset: Mapping[str, Any]) -> None:
        url = valueset["url"]
        self._urls.add(url)
        pattern = text_pattern(valueset)
        if pattern is not None:
            self._words.append((pattern, url))
        for concept in valueset.get("expansion", {}).get("contains", []):
            key = (concept["system"], _normalise(concept["system"], concept["code"]))
            self._exact[key].add(url)
        for include in valueset.get("compose", {}).get("include", []):
            system = include.get("system", "")
            for concept in include.get("concept", []):
                for ext in concept.get("extension", []):
                    if ext.get("url") == BROADER_CODE and isinstance(ext.get("valueString"), str):
                        self._broader[url][(system, _normalise(system, concept["code"]))] = ext["valueString"]
            for flt in include.get("filter", []):
                if flt.get("op") == "is-a" and system in PREFIX_HIERARCHIES:
                    self._prefixes[system].append((_normalise(system, flt["value"]), url))

    def knows(self, url: str) -> bool:
        return url in self._urls

    def valuesets_of(self, system: str | None, code: str | None) -> frozenset[str]:
        """Every loaded ValueSet that contains this code."""
        if not isinstance(system, str) or not isinstance(code, str):
            return frozenset()
        key = (system, code)
        found = self._memo.get(key)
        if found is None:
            norm = _normalise(system, code)
            found = frozenset(self._exact.get((system, norm), ())) | {
                url for prefix, url in self._prefixes.get(system, ()) if norm.startswith(prefix)
            }
            if len(self._memo) > 100_000:  # bounded: EHR data can carry any number of distinct codes
                self._memo.clear()
            self._memo[key] = found
        return found

    def concept_valuesets(self, value: Any) -> frozenset[str]:
        """codings_in(value), frozen. A CodeableConcept of one coding (most records) is answered from the memos alone:
        its code's, and its words' (its text and its display)."""
        if isinstance(value, dict):
            codings = value.get("coding")
            if isinstance(codings, list) and len(codings) == 1 and isinstance(codings[0], dict) and "display" not in value:
                coding = codings[0]
                found = self.valuesets_of(coding.get("system"), coding.get("code"))
                if self._any_words is not None:
                    for words in (value.get("text"), coding.get("display")):
                        if isinstance(words, str) and (named := self.named_by(words)):
                            found = found | named
                return found
        return frozenset(self.codings_in(value))

    def codings_in(self, value: Any) -> set[str]:
        """ValueSets of a Coding, a CodeableConcept, a Reference, or a list of them: by code, then by words."""
        found: set[str] = set()
        codings = _codings(value)
        for coding in codings:
            found |= self.valuesets_of(coding.get("system"), coding.get("code"))
        if len(codings) > 1 and not found.isdisjoint(self._broader):
            found -= self._told_apart(codings)
        if self._any_words is not None:
            for words in _texts(value):
                found |= self.named_by(words)
        return found

    def _told_apart(self, codings: Sequence[Mapping[str, Any]]) -> set[str]:
        """The ValueSets a concept is in only through a broader code that another of its codings tells apart.

        A WHO ICD-10 G61.8 sent with SNOMED CT CIDP is a CIDP: G61.8 also files MMN, but the specific coding beside it
        says which of the diseases the broader code holds this one is. The concept leaves every ValueSet it reaches
        only through such a broader code when a ValueSet that holds that same code also holds another of its codings as
        itself. A broader code alone, or beside codings that do not tell (a local code), still counts for each."""
        placed = [(c, self.valuesets_of(c.get("system"), c.get("code"))) for c in codings]
        broader_only: dict[str, list[Mapping[str, Any]]] = {}
        for url in {u for _, urls in placed for u in urls}:
            holding = [c for c, urls in placed if url in urls]
            if all(self.broader_note(c, url) is not None for c in holding):
                broader_only[url] = holding
        told: set[str] = set()
        for url, holding in broader_only.items():
            siblings = {u for c in holding for u in self.valuesets_of(c.get("system"), c.get("code"))} - {url}
            if any(other in urls and all(c is not h for h in holding) and self.broader_note(c, other) is None
                   for other in siblings for c, urls in placed):
                told.add(url)
        return told

    def named_by(self, words: str) -> frozenset[str]:
        """The ValueSets whose text-pattern these words match. Remembered: the same names (a lab's, a product's) come
        in call after call, and one search of every pattern costs more than the rest of the lookup (tens of
        microseconds for a long case-insensitive alternation)."""
        found = self._words_memo.get(words)
        if found is None:
            found = frozenset(url for pattern, url in self._words if pattern.search(words)) if self._any_words and self._any_words.search(
                words) else frozenset()
            if len(self._words_memo) > 100_000:  # bounded, as the codes' memo
                self._words_memo.clear()
            self._words_memo[words] = found
        return found

    def is_known(self, value: Any) -> bool:
        """Is this concept in a loaded ValueSet?"""
        return bool(self.codings_in(value))

    def member_of(self, value: Any, url: str) -> bool:
        return url in self.codings_in(value)

    def has_broader_codes(self, url: str) -> bool:
        """Does this ValueSet hold a code broader than its meaning (so that broader_note may give a note for it)?"""
        return url in self._broader

    def broader_note(self, coding: Mapping[str, Any], url: str) -> str | None:
        """What else the code covers, when a coding is in this ValueSet only through a code broader than it.

        A WHO ICD-10 record of CIDP carries G61.8, which also holds MMN and other neuropathies: the
        recommendation may fire, and the card should say which code it rests on and what else that covers.
        A descendant (G40.801 under a broader G40.80) gets its ancestor's note. None when the coding is not
        in the ValueSet or is in it as itself.
        """
        system, code = coding.get("system"), coding.get("code")
        if not isinstance(system, str) or not isinstance(code, str) or url not in self.valuesets_of(system, code):
            return None
        notes = self._broader.get(url, {})
        norm = _normalise(system, code)
        if (system, norm) in notes:
            return notes[(system, norm)]
        if system not in PREFIX_HIERARCHIES:
            return None
        ancestors = [prefix for (sys_, prefix) in notes if sys_ == system and norm.startswith(prefix)]
        return notes[(system, max(ancestors, key=len))] if ancestors else None


def _texts(value: Any) -> list[str]:
    """The words a concept is written in: a CodeableConcept's text and its codings' displays, a Coding's or a
    Reference's display. A resource's `text` is a Narrative, not words of a concept, and is not read."""
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    if not isinstance(value, Mapping):
        return []
    words = [value.get("text"), value.get("display")] + [c.get("display") for c in objects(value.get("coding"))]
    return [w for w in words if isinstance(w, str)]


def _codings(value: Any) -> Sequence[Mapping[str, Any]]:
    if isinstance(value, list):
        return [c for item in value for c in _codings(item)]
    if not isinstance(value, Mapping):
        return []
    if "coding" in value:
        return objects(value.get("coding"))
    if "code" in value:
        return [value]
    return []


class ConceptIndex:
    """One call's answers to "which ValueSets hold this concept?", each concept looked up once.

    A call asks about the same records many times (each recommendation's facts, the card's evidence, which records
    are coded at all). Keyed by the identity of the concept object: the call's data lives as long as the index, and
    the index holds each concept it answered for, so an id is never reused within the call."""

    def __init__(self, terminology: Terminology):
        self._terminology = terminology
        self._found: dict[int, tuple[Any, frozenset[str]]] = {}
        self._groups: dict[tuple[int, str], tuple[list, dict[str, list]]] = {}

    def grouped(self, records: list, element: str, concept_of: Callable[[Any], Any]) -> dict[str, list]:
        """The records by the ValueSets that hold their `element` (each record under every one of them, in the records'
        order), made in one pass the first time a call asks about these records: every membership question about
        them after that is one lookup. Keyed like the concepts: the index holds the list it answered for."""
        known = self._groups.get((id(records), element))
        if known is None:
            groups: dict[str, list] = {}
            for record in records:
                for url in self.valuesets(concept_of(record)):
                    groups.setdefault(url, []).append(record)
            known = self._groups[(id(records), element)] = (records, groups)
        return known[1]

    def valuesets(self, concept: Any) -> frozenset[str]:
        known = self._found.get(id(concept))
        if known is None:
            known = self._found[id(concept)] = (concept, self._terminology.concept_valuesets(concept))
        return known[1]

    def member_of(self, concept: Any, url: str) -> bool:
        return url in self.valuesets(concept)

    def is_known(self, concept: Any) -> bool:
        return bool(self.valuesets(concept))
