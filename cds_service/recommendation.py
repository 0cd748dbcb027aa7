"""A guideline recommendation as the engine evaluates it: what it says, when it applies, and how it is evaluated.

knowledge.py loads and validates the files into these; this module holds no knowledge of files or FHIR structure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .definitions import Expression
from .errors import ServiceError
from .regimen import Regimen
from .terminology import ConceptIndex


@dataclass(frozen=True)
class Condition:
    """One applicability condition."""

    expression: Expression


class UnreadableData(ServiceError):
    """Patient data of the wrong shape for a recommendation's conditions (text where a number goes): the engine gives
    no answer rather than a guess, and says why (http_policy answers 422)."""


@dataclass(frozen=True)
class Recommendation:
    """One top-level PlanDefinition action: a guideline recommendation, ready to evaluate."""

    plan_url: str
    action_id: str
    topic: dict  # Coding identifying the recommendation
    title: str
    description: str
    priority: str
    level: dict  # Coding: EFNS level A/B/C, good practice point, no recommendation
    evidence: dict | None  # Coding: EFNS evidence class, where the guideline states it
    direction: str | None  # "for" | "against"
    documentation: dict  # RelatedArtifact: guideline, section, the sentence itself, DOI
    links: tuple[dict, ...]
    hooks: frozenset[str]
    indications: frozenset[str]  # diagnosis ValueSets; empty = applies to every IVIG order
    conditions: tuple[Condition, ...]  # all must hold, checked in order
    watched_valuesets: tuple[str, ...]  # ValueSets the conditions look at: the facts a card shows
    observed_valuesets: tuple[str, ...]  # Observation inputs: the card shows the latest result of each, or its absence
    inputs_used: frozenset[str]  # the base inputs the conditions rest on: the card states those facts (weight, age, courses)
    regimens: tuple[Regimen, ...]
    selection_behavior: str | None
    source_file: str
    #: action ids of the recommendations this one stands for when two or more of them apply: the record cannot tell
    #: which (the purpose of the order, the severity), so one card states them all and what decides
    alternatives: tuple[str, ...] = ()
    #: how its finding is shown (knowledge.SHOWN_AS_CODES): a card of its own; a line in the main card (a reminder that
    #: holds for every order); or inside the card of a regimen the draft departs from, when there is one (a check that
    #: would only repeat that departure), and a card of its own otherwise
    shown_as: str = "card"

    @property
    def level_text(self) -> str:
        return self.level.get("display", self.level["code"])

    def applies(self, values: dict[str, Any], index: ConceptIndex, resolve: Callable[[str], Any]) -> bool:
        """All applicability conditions true (an empty or non-boolean result is false), checked in order; the named
        facts are evaluated when a condition first needs them (`resolve`, Definitions.resolver of the call's `values`),
        once per call, and not at all when an earlier condition fails or the logic is decided without them.

        A condition that cannot be evaluated on this patient's data (a boolean where a date belongs,
        text where a number does) is an answer we cannot give: UnreadableData, never a guess."""
        try:
            return all(condition.expression.evaluate(values, index, resolve) == [True] for condition in self.conditions)
        except Exception as exc:  # fhirpathpy raises bare Exceptions for type errors in the data
            raise UnreadableData(f"recommendation {self.action_id} cannot be evaluated on this patient's data: {str(exc)[:200]}") from exc
