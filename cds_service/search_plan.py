"""Which FHIR searches a hook call sends: Observation searches that differ only in their codes go as one.

Why: every search costs the EHR's server a pass over the patient's records and costs us a round trip;
the body weight (newest first, one) and the lab results (newest first, a hundred) are both Observations
of the patient. One search for the union of their codes gives each key the same answer, split here:
a key gets the entries whose ``Observation.code`` has one of its codes (token semantics: ``system|code``,
``code`` for any system, ``|code`` for none), plus any OperationOutcome entries.

Searches merge when every other parameter is the same, and either none has a ``_count`` (the merged
search reads every page, as each would) or all have one and the same ``_sort``: then the merged search
asks for the sum of the counts in that order, and each key takes its first ``_count`` matches, which
are its own search's answer, since the server sorted them the same way. Where a key got fewer than its
count while the merged page was not the whole result (its records crowded out by newer ones of the
other keys), its own search is sent after all: rarely one more round trip, never another answer.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from .fhir_client import next_link
from .fhirjson import obj, objects, text

_MERGEABLE_TYPE = "Observation"
_LOCAL = ("code", "_count")  # the parameters a merged search answers here, per key

Fetch = Callable[[str], "dict | None"]


@dataclass(frozen=True)
class Search:
    """One query to send, and the prefetch keys its answer is split into (``parts``: key -> its own query)."""

    url: str
    parts: Mapping[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.parts)

    def split(self, answer: dict | None, fetch: Fetch) -> dict[str, dict | None]:
        """Each key's answer from this search's answer (the answer itself for an unmerged search);
        ``fetch`` sends a key's own query when the merged answer cannot tell its answer."""
        if len(self.parts) == 1 or answer is None or answer.get("resourceType") != "Bundle":
            return {key: answer for key in self.parts}
        whole = next_link(answer) is None
        return {key: _part(answer, query, whole, fetch) for key, query in self.parts.items()}


def plan(queries: Mapping[str, str]) -> list[Search]:
    """The searches to send for these rendered queries (key -> relative URL), in the keys' order."""
    groups: dict[tuple, list[str]] = {}
    for key, query in queries.items():
        groups.setdefault(_merge_key(query) or ("alone", key), []).append(key)
    searches: list[Search] = []
    for group_key, keys in groups.items():
        if group_key[0] == "alone" or len(keys) < 2:
            searches.extend(Search(queries[key], {key: queries[key]}) for key in keys)
            continue
        parsed = [_params(queries[key]) for key in keys]
        codes: list[str] = []
        for params in parsed:
            codes.extend(c for c in _param(params, "code").split(",") if c not in codes)
        merged = [(name, value) for name, value in parsed[0] if name not in _LOCAL]
        merged.insert(1 if merged else 0, ("code", ",".join(codes)))
        if _param(parsed[0], "_count"):
            merged.append(("_count", str(sum(int(_param(params, "_count")) for params in parsed))))
        url = f"{_MERGEABLE_TYPE}?" + urlencode(merged, safe="|,:/{}")
        searches.append(Search(url, {key: queries[key] for key in keys}))
    return searches


def _merge_key(query: str) -> tuple | None:
    """What must be equal for two queries to merge; None when this one does not merge."""
    path, _, _ = query.partition("?")
    if path != _MERGEABLE_TYPE:
        return None
    params = _params(query)
    names = [name for name, _ in params]
    if names.count("code") != 1 or names.count("_count") > 1 or any(":" in n for n in names):
        return None
    count = _param(params, "_count")
    if count and (not count.isdigit() or int(count) < 1 or not _param(params, "_sort")):
        return None  # the first N in no stated order cannot be told from a merged page
    return ("merge", bool(count), tuple(sorted((name, value) for name, value in params if name not in _LOCAL)))


def _params(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query.partition("?")[2], keep_blank_values=True)


def _param(params: list[tuple[str, str]], name: str) -> str:
    return next((value for n, value in params if n == name), "")


def _part(bundle: dict, query: str, whole: bool, fetch: Fetch) -> dict | None:
    params = _params(query)
    tokens = [_token(t) for t in _param(params, "code").split(",")]
    outcomes, matches = [], []
    for entry in objects(bundle.get("entry")):
        resource = obj(entry.get("resource"))
        if resource.get("resourceType") == "OperationOutcome":
            outcomes.append(entry)
        elif resource.get("resourceType") == _MERGEABLE_TYPE and _has_code(resource, tokens):
            matches.append(entry)
    count = _param(params, "_count")
    if count:
        if len(matches) < int(count) and not whole:
            return fetch(query)  # crowded out of the merged page: only its own search can tell
        matches = matches[: int(count)]
    part = {name: value for name, value in bundle.items() if name not in ("entry", "total", "link")}
    if matches or outcomes:
        part["entry"] = matches + outcomes
    return part


def _token(value: str) -> tuple[str | None, str]:
    """(system, code); system None = any system, "" = no system."""
    if "|" not in value:
        return None, value
    system, _, code = value.partition("|")
    return system, code


def _has_code(resource: dict, tokens: list[tuple[str | None, str]]) -> bool:
    for coding in objects(obj(resource.get("code")).get("coding")):
        system, code = text(coding.get("system")) or "", text(coding.get("code"))
        if any(code == want and (want_system is None or want_system == system) for want_system, want in tokens):
            return True
    return False
