"""PlanDefinition/$apply: a CarePlan with the RequestGroup contained, built by the same engine as the cards."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.careplan import CarePlan

from tests.fhir_data import bundle, days_ago, gbs, hook_request, ivig_order, patient, prefetch, weight
from tests.medplum import validate_files

GBS_DATA = [patient(), gbs(onset=days_ago(3)), weight(70, when=days_ago(1))]


def parameters(*resources, draft=None, subject="Patient/pat-1") -> dict:
    params = [{"name": "subject", "valueString": subject}, {"name": "data", "resource": bundle(list(resources))}]
    if draft is not None:
        params.append({"name": "draftOrder", "resource": draft})
    return {"resourceType": "Parameters", "parameter": params}


def apply(client, plan_id, body):
    return client.post(f"/fhir/PlanDefinition/{plan_id}/$apply", json=body)


def test_gbs_apply_gives_a_careplan_with_the_level_a_regimen(client):
    response = apply(client, "efns-ivig-gbs", parameters(*GBS_DATA))
    assert response.status_code == 200 and response.content_type == "application/fhir+json"
    care_plan = response.get_json()
    CarePlan.model_validate(care_plan)
    group, *proposals = care_plan["contained"]
    assert group["resourceType"] == "RequestGroup" and care_plan["activity"][0]["reference"]["reference"] == "#request-group"
    assert care_plan["instantiatesCanonical"] == ["http://ivig-cds.org/fhir/PlanDefinition/efns-ivig-gbs"]
    actions = {a["id"]: a for a in group["action"]}
    assert set(actions) == {"GBS-1", "GBS-2"}  # only this PlanDefinition's recommendations
    first_line = actions["GBS-1"]
    assert first_line["priority"] == "routine" and first_line["selectionBehavior"] == "at-most-one"
    (choice,) = first_line["action"]
    proposal = next(p for p in proposals if f"#{p['id']}" == choice["resource"]["reference"])
    assert proposal["intent"] == "proposal"
    assert proposal["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 28


def test_apply_gives_the_same_advice_as_the_hook(client, cds):
    cards = cds(hook_request([ivig_order()], prefetch=prefetch(conditions=GBS_DATA[1:2], weights=GBS_DATA[2:])))
    group = apply(client, "efns-ivig-gbs", parameters(*GBS_DATA)).get_json()["contained"][0]
    gbs_cards = [c for c in cards if c["source"]["topic"]["code"].startswith("GBS")]
    assert [(a["title"], a["description"]) for a in group["action"]] == [(c["summary"], c["detail"]) for c in gbs_cards]
    indicator = {"routine": "info", "urgent": "warning", "stat": "critical"}  # the CDS-on-FHIR mapping
    assert [indicator[a["priority"]] for a in group["action"]] == [c["indicator"] for c in gbs_cards]
    assert [[p["title"] for p in a.get("action", [])] for a in group["action"]] == [
        [s["label"] for s in c.get("suggestions", [])] for c in gbs_cards]


def test_a_draft_order_that_departs_makes_the_action_urgent(client):
    draft = ivig_order(daily_g=42, days=5)
    actions = {a["id"]: a for a in apply(client, "efns-ivig-gbs", parameters(*GBS_DATA, draft=draft)).get_json()["contained"][0]["action"]}
    assert actions["GBS-1"]["priority"] == "urgent" and "about 1.5 times the guideline's course total" in actions["GBS-1"]["title"]


def test_safety_plan_applies_to_any_patient(client):
    actions = apply(client, "efns-ivig-safety", parameters(patient())).get_json()["contained"][0]["action"]
    # a patient with nothing on record: no monitoring results, no diagnosis the guideline covers, no weight
    assert {a["id"] for a in actions} == {"SAFE-1-results", "SAFE-stewardship", "SAFE-weight"}


def test_a_plan_that_does_not_apply_gives_a_careplan_without_actions(client):
    care_plan = apply(client, "efns-ivig-cidp", parameters(*GBS_DATA)).get_json()
    assert "action" not in care_plan["contained"][0]


@pytest.mark.parametrize("body, status", [
    ({"resourceType": "Bundle"}, 400),
    (parameters(subject="Group/1"), 400),
    ({"resourceType": "Parameters", "parameter": [{"name": "subject", "valueString": "Patient/1"},
                                                  {"name": "data", "resource": {"resourceType": "Patient"}}]}, 400),
    (parameters(draft={"resourceType": "MedicationRequest", "medicationCodeableConcept": {"text": "aspirin"}}), 400),
])
def test_bad_parameters_get_a_400_operation_outcome(client, body, status):
    response = apply(client, "efns-ivig-gbs", body)
    assert response.status_code == status and response.get_json()["resourceType"] == "OperationOutcome"


def test_unknown_plan_is_404(client):
    assert apply(client, "no-such-plan", parameters()).status_code == 404


def test_definitions_are_readable_where_the_careplan_points(client):
    plan = client.get("/fhir/PlanDefinition/efns-ivig-gbs")
    assert plan.status_code == 200 and plan.get_json()["url"] == "http://ivig-cds.org/fhir/PlanDefinition/efns-ivig-gbs"
    assert client.get("/fhir/PlanDefinition/nothing").status_code == 404


@pytest.mark.integration  # starts a process or a server (tests/tiers.py)
def test_the_careplan_passes_an_independent_r4_validator(client, tmp_path):
    path = tmp_path / "careplan.json"
    path.write_text(json.dumps(apply(client, "efns-ivig-gbs", parameters(*GBS_DATA)).get_json()))
    ((_, ok, message),) = validate_files([path])
    assert ok, message


@pytest.mark.integration  # starts a process or a server (tests/tiers.py)
def test_the_capability_statement_announces_apply_and_reads(client, tmp_path):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200 and response.content_type == "application/fhir+json"
    statement = response.get_json()
    assert statement["fhirVersion"] == "4.0.1" and statement["kind"] == "instance"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert resources["PlanDefinition"]["operation"] == [{"name": "apply", "definition": "http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply"}]
    assert {"ActivityDefinition", "ValueSet", "CodeSystem", "Library"} <= set(resources)
    path = tmp_path / "capability.json"
    path.write_text(json.dumps(statement))
    ((_, ok, message),) = validate_files([path])
    assert ok, message
