"""The exported definitions load into a real FHIR R4 server (Medplum's FhirRouter, tests/fhir_server) and every
canonical reference inside them resolves there by a `url` search."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from cds_service import export, knowledge
from tests.conftest import ROOT
from tests.fhir_server_fixtures import entry_statuses, load
from tests.medplum import FhirServer

KNOWLEDGE = knowledge.load(ROOT)
OWN_CODE_SYSTEMS = "http://ivig-cds.org/fhir/CodeSystem/"
_MEMBER_OF = re.compile(r"memberOf\(\s*'([^']+)'\s*\)")
_CANONICAL_TYPE = re.compile(r"/([A-Z][A-Za-z]+)/[^/|]+(?:\|[^/]*)?$")


def bundle() -> dict:
    return export.transaction_bundle(KNOWLEDGE)


def definitions() -> list[dict]:
    return [entry["resource"] for entry in bundle()["entry"]]


# ---- the canonical references inside the definitions ------------------------------------------

def _walk(node, path: str) -> Iterator[tuple[str, object]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def _actions(actions: list[dict], path: str) -> Iterator[tuple[str, dict]]:
    for i, action in enumerate(actions):
        yield f"{path}[{i}]", action
        yield from _actions(action.get("action", []), f"{path}[{i}].action")


def references(resource: dict) -> list[tuple[str, str, str]]:
    """(kind of reference, target resource type, canonical) for each canonical reference in a definition."""
    refs: list[tuple[str, str, str]] = []
    if resource["resourceType"] == "PlanDefinition":
        refs += [("library", "Library", url) for url in resource.get("library", [])]
        for extension in resource.get("extension", []):  # the named facts (FHIR variable extensions)
            text = extension.get("valueExpression", {}).get("expression", "")
            refs += [("variable memberOf", "ValueSet", url) for url in _MEMBER_OF.findall(text)]
        for _, action in _actions(resource.get("action", []), "action"):
            if "definitionCanonical" in action:
                refs.append(("definitionCanonical", "ActivityDefinition", action["definitionCanonical"]))
            for data in action.get("input", []):
                refs += [("input.codeFilter.valueSet", "ValueSet", f["valueSet"]) for f in data.get("codeFilter", []) if "valueSet" in f]
            for condition in action.get("condition", []):
                text = condition.get("expression", {}).get("expression", "")
                refs += [("condition memberOf", "ValueSet", url) for url in _MEMBER_OF.findall(text)]
    if resource["resourceType"] == "Library":
        for data in resource.get("dataRequirement", []):
            refs += [("dataRequirement.codeFilter.valueSet", "ValueSet", f["valueSet"])
                     for f in data.get("codeFilter", []) if "valueSet" in f]
    for where, node in _walk(resource, resource["resourceType"]):
        if not isinstance(node, dict):
            continue
        if where.split(".")[-1].startswith("relatedArtifact[") and node.get("type") == "depends-on" and "resource" in node:
            match = _CANONICAL_TYPE.search(node["resource"])
            refs.append(("relatedArtifact depends-on", match.group(1) if match else "?", node["resource"]))
        system = node.get("system")
        if isinstance(system, str) and system.startswith(OWN_CODE_SYSTEMS):
            refs.append(("coding system", "CodeSystem", system))
    return refs


ALL_REFERENCES = sorted({(kind, target, url, f"{r['resourceType']}/{r['id']}")
                         for r in definitions() for kind, target, url in references(r)})


def test_every_kind_of_reference_is_present():
    """Guards the reference walk itself: each kind the definitions use is found at least once."""
    kinds = Counter(kind for kind, *_ in ALL_REFERENCES)
    assert set(kinds) == {"library", "definitionCanonical", "input.codeFilter.valueSet", "variable memberOf",
                          "dataRequirement.codeFilter.valueSet", "relatedArtifact depends-on", "coding system"}, kinds


# ---- loading ------------------------------------------------------------------------------------

def test_the_exported_transaction_bundle_loads_with_every_entry_200_or_201(fhir: FhirServer):
    """`ivig-cds export --bundle` writes one transaction of every definition. Medplum refuses a transaction with more
    than 50 updates (a server policy; HAPI FHIR has none), so it goes in as consecutive transactions of at most 50
    entries, in the exported order, as tools/load_definitions.py --max-entries 50 sends it."""
    exported = bundle()
    assert exported["type"] == "transaction" and len(exported["entry"]) == len(KNOWLEDGE.resources)
    statuses = [s for part in export.split_transaction(exported, 50) for s in entry_statuses(fhir.transaction(part))]
    assert len(statuses) == len(exported["entry"]) and set(statuses) <= {"200", "201"}, Counter(statuses)


def test_every_canonical_reference_resolves_by_url_search(fhir: FhirServer):
    load(fhir, definitions())  # in transactions of at most 50 entries (see the test above)
    sources: dict[tuple[str, str], list[str]] = {}
    for kind, target, url, source in ALL_REFERENCES:
        sources.setdefault((target, url), []).append(f"{source} ({kind})")
    unresolved = []
    for (target, url), where in sorted(sources.items()):  # one search per distinct canonical
        response = fhir.get(f"{target}?url={url}")
        assert response.status_code == 200, (target, url, response.text[:500])
        found = response.json()
        matches = [e["resource"] for e in found.get("entry", [])]
        if len(matches) != 1 or found.get("total") != 1 or matches[0].get("url") != url.split("|")[0]:
            unresolved.append(f"{target}?url={url}: {len(matches)} match(es); referenced from {', '.join(where)}")
    assert not unresolved, "\n".join(unresolved)
    assert len({url for _, _, url, _ in ALL_REFERENCES}) > 40


def test_loading_twice_leaves_exactly_one_copy_of_each(fhir: FhirServer):
    resources = definitions()
    load(fhir, resources)
    load(fhir, resources)  # PUT by id: an update, not a second copy
    per_type = Counter(r["resourceType"] for r in resources)
    for kind, count in per_type.items():
        found = fhir.get(f"{kind}?_count=1000").json()
        assert found.get("total") == count and len(found.get("entry", [])) == count, kind
        assert sorted(e["resource"]["id"] for e in found["entry"]) == sorted(r["id"] for r in resources if r["resourceType"] == kind)
    for resource in resources:
        found = fhir.get(f"{resource['resourceType']}?url={resource['url']}").json()
        assert found.get("total") == 1, resource["url"]
        stored = found["entry"][0]["resource"]
        assert stored["id"] == resource["id"] and stored.get("version") == resource.get("version")
