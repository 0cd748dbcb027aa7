"""CDS Hooks 2.0 feedback (POST /cds-services/{id}/feedback): validated against the cards we returned.

Why so strict: the committee's report counts what is stored here. Feedback on a card we never returned, on
a suggestion that card did not carry, or with a time that cannot be read would count something that did not
happen, so it is refused with a 400 saying which entry and why, and nothing of that request is stored.

Override reasons are not checked against the card's `overrideReasons`: the specification lets a client offer
reasons of its own. They must be a well-formed Coding, and are stored as sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .errors import RequestError
from .protocol import load_json
from .store import FeedbackEntry, RecordedCard

OUTCOMES = ("accepted", "overridden")
#: most entries in one request: a client reports what one clinician did, not a backlog of millions
MAX_ENTRIES = 100
#: longest identifier (card or suggestion uuid) and longest Coding member we keep
MAX_ID = 64
MAX_CODING_TEXT = 512
#: longest override comment kept; a longer one is refused rather than cut, so nothing is silently lost
MAX_COMMENT = 4000
#: RFC 3339 date-time (what "ISO 8601 in UTC" means in practice): a date, a time and a zone
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|z|[+-]\d{2}:\d{2})")


def parse(body: bytes, service_id: str, cards: Callable[[set[str]], Mapping[str, RecordedCard]],
          max_json_depth: int) -> list[FeedbackEntry]:
    """The entries of a feedback request, each checked against the card it names (looked up with `cards`).

    Raises RequestError (400) with the first fault found."""
    document = load_json(body, max_json_depth)
    items = document.get("feedback") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise RequestError("the feedback request must be an object with a `feedback` array")
    if not items:
        raise RequestError("`feedback` must hold at least one entry")
    if len(items) > MAX_ENTRIES:
        raise RequestError(f"`feedback` holds {len(items)} entries; at most {MAX_ENTRIES} are taken in one request")
    entries = [_entry(item, f"feedback[{i}]") for i, item in enumerate(items)]
    known = cards({e.card for e in entries})
    for i, entry in enumerate(entries):
        where = f"feedback[{i}]"
        card = known.get(entry.card)
        if card is None:
            raise RequestError(f"{where}.card: {entry.card!r} is not a card this service returned (or it has expired)")
        if card.service_id != service_id:
            raise RequestError(f"{where}.card: {entry.card!r} was returned by {card.service_id}, not by {service_id}")
        for j, suggestion in enumerate(entry.accepted_suggestions):
            if suggestion not in card.suggestions:
                raise RequestError(f"{where}.acceptedSuggestions[{j}].id: {suggestion!r} is not a suggestion of card {entry.card!r}")
    return entries


def _entry(item: Any, where: str) -> FeedbackEntry:
    if not isinstance(item, dict):
        raise RequestError(f"{where} must be an object")
    card = _identifier(item.get("card"), f"{where}.card")
    outcome = item.get("outcome")
    if outcome not in OUTCOMES:
        raise RequestError(f"{where}.outcome must be one of {', '.join(OUTCOMES)}")
    accepted = _accepted_suggestions(item.get("acceptedSuggestions"), f"{where}.acceptedSuggestions")
    if accepted and outcome != "accepted":
        raise RequestError(f"{where}.acceptedSuggestions is only for an accepted outcome, not {outcome}")
    override = item.get("overrideReason")
    if override is not None and outcome != "overridden":
        raise RequestError(f"{where}.overrideReason is only for an overridden outcome, not {outcome}")
    system, code, display, comment = _override_reason(override, f"{where}.overrideReason")
    return FeedbackEntry(card=card, outcome=outcome, outcome_at=_timestamp(item.get("outcomeTimestamp"), f"{where}.outcomeTimestamp"),
                         accepted_suggestions=accepted, override_system=system, override_code=code,
                         override_display=display, override_comment=comment)


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"{where} must be the uuid (a string) of a card or suggestion")
    if len(value) > MAX_ID:
        raise RequestError(f"{where} is longer than {MAX_ID} characters: not an identifier this service gave")
    return value


def _timestamp(value: Any, where: str) -> datetime:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise RequestError(f"{where} must be an ISO 8601 date-time with a time zone, e.g. 2026-11-24T10:05:31Z")
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError as exc:  # e.g. 2026-02-30 or 25:00
        raise RequestError(f"{where} is not a real date and time: {exc}") from exc


def _accepted_suggestions(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RequestError(f"{where} must be an array of {{id}} objects")
    ids = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise RequestError(f"{where}[{i}] must be an object with the suggestion's id")
        ids.append(_identifier(item.get("id"), f"{where}[{i}].id"))
    return tuple(dict.fromkeys(ids))


def _override_reason(value: Any, where: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(system, code, display, userComment) of an OverrideReason; all None when there is none."""
    if value is None:
        return None, None, None, None
    if not isinstance(value, dict):
        raise RequestError(f"{where} must be an object with a `reason` Coding and/or a `userComment`")
    comment = value.get("userComment")
    if comment is not None and not isinstance(comment, str):
        raise RequestError(f"{where}.userComment must be a string")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise RequestError(f"{where}.userComment is longer than {MAX_COMMENT} characters")
    reason = value.get("reason")
    if reason is None:
        if not comment:
            raise RequestError(f"{where} must have a `reason` Coding or a `userComment`")
        return None, None, None, comment
    if not isinstance(reason, dict):
        raise RequestError(f"{where}.reason must be a Coding (an object with system and code)")
    members = {}
    for name in ("system", "code", "display"):
        member = reason.get(name)
        if member is None and name == "display":
            continue
        if not isinstance(member, str) or not member.strip() or len(member) > MAX_CODING_TEXT:
            raise RequestError(f"{where}.reason.{name} must be a non-empty string of at most {MAX_CODING_TEXT} characters")
        members[name] = member
    return members["system"], members["code"], members.get("display"), comment or None
