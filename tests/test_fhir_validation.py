"""Every definition is valid FHIR R4 by an independent validator (@medplum/core validateResource, run with node):
the source files, the resources of the FHIR package, and the transaction Bundle that `ivig-cds export --bundle` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service import export, knowledge
from tests.conftest import ROOT
from tests.medplum import validate_files

DEFINITION_FILES = sorted((ROOT / "plandefinitions").glob("*.json")) + sorted((ROOT / "valuesets").glob("*.json"))
KNOWLEDGE = knowledge.load(ROOT)
PACKAGE_FILES = export.package_files(KNOWLEDGE)
PACKAGE_RESOURCES = sorted(name for name, content in PACKAGE_FILES.items() if "resourceType" in json.loads(content))
BUNDLE = "export-bundle.json"
NEGATIVE_CONTROL = "negative-control.json"  # proves the validator run can fail: no status, an unknown element


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[bool, str]]:
    """One validator run for every file: id -> (ok, message)."""
    folder = tmp_path_factory.mktemp("fhir-validation")
    (folder / "package").mkdir()
    paths: dict[str, Path] = {f"{p.parent.name}/{p.name}": p for p in DEFINITION_FILES}
    for name in PACKAGE_RESOURCES:
        paths[f"package/{name}"] = folder / "package" / name
        paths[f"package/{name}"].write_bytes(PACKAGE_FILES[name])
    paths[BUNDLE] = folder / BUNDLE
    paths[BUNDLE].write_text(json.dumps(export.transaction_bundle(KNOWLEDGE), indent=2, ensure_ascii=False))
    broken = json.loads((ROOT / "plandefinitions" / "PlanDefinition-efns-ivig-gbs.json").read_text())
    del broken["status"]
    broken["notAnElement"] = True
    paths[NEGATIVE_CONTROL] = folder / NEGATIVE_CONTROL
    paths[NEGATIVE_CONTROL].write_text(json.dumps(broken))
    ids = list(paths)
    outcome = validate_files([paths[i] for i in ids])
    return {i: (ok, message) for i, (_, ok, message) in zip(ids, outcome, strict=True)}


def test_the_validator_rejects_an_invalid_plan_definition(results):
    ok, message = results[NEGATIVE_CONTROL]
    assert not ok
    assert "PlanDefinition.status" in message and "notAnElement" in message, message


def test_the_files_and_the_package_hold_the_same_definitions():
    assert len(DEFINITION_FILES) == len(KNOWLEDGE.resources) == len(PACKAGE_RESOURCES) > 50
    assert {p.name for p in DEFINITION_FILES} == set(PACKAGE_RESOURCES)


@pytest.mark.parametrize("name", [f"{p.parent.name}/{p.name}" for p in DEFINITION_FILES])
def test_definition_file_is_valid_r4(results, name):
    ok, message = results[name]
    assert ok, f"{name}: {message}"


@pytest.mark.parametrize("name", PACKAGE_RESOURCES)
def test_package_resource_is_valid_r4(results, name):
    ok, message = results[f"package/{name}"]
    assert ok, f"package/{name}: {message}"


def test_exported_transaction_bundle_is_valid_r4(results):
    ok, message = results[BUNDLE]
    assert ok, f"{BUNDLE}: {message}"


def suggested_orders(client) -> list[dict]:
    """The MedicationRequests suggested for drafts as EHRs send them, valid or not (see test_dose.sandbox_style_order)."""
    from tests.fhir_data import gbs, hook_request, ivig_order, prefetch, weight
    from tests.test_dose import sandbox_style_order

    odd = ivig_order(id="odd-1")
    odd.update(reasonCode={"text": "GBS"}, identifier=[{"value": 7}], encounter={"reference": "Encounter/e1"}, priority="stat")
    contained = ivig_order(id="contained-1")
    del contained["medicationCodeableConcept"]
    contained.update(medicationReference={"reference": "#med"},
                     contained=[{"resourceType": "Medication", "id": "med", "code": {"text": "Immune globulin intravenous 10%"}}])
    resources = []
    for order in (sandbox_style_order(), odd, contained, ivig_order(daily_g=280, days=5)):
        body = hook_request([order], prefetch=prefetch(conditions=[gbs()], weights=[weight(70)]))
        for card in client.post("/cds-services/ivig-order-select", json=body).get_json()["cards"]:
            resources += [a["resource"] for s in card.get("suggestions", []) for a in s["actions"] if "resource" in a]
    return resources


def test_suggested_orders_are_valid_r4(client, tmp_path):
    resources = suggested_orders(client)
    assert len(resources) >= 4
    paths = []
    for i, resource in enumerate(resources):
        paths.append(tmp_path / f"suggestion-{i}.json")
        paths[-1].write_text(json.dumps(resource))
    for path, ok, message in validate_files(paths):
        assert ok, f"{path}: {message}"
