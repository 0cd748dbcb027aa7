"""The knowledge files: valid FHIR R4, complete, cited, and refused at start-up when broken."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cds_service.knowledge import DefinitionError, load
from tests.conftest import ROOT

FILES = sorted((ROOT / "plandefinitions").glob("*.json")) + sorted((ROOT / "valuesets").glob("*.json"))
RECOMMENDATION_CODES = ROOT / "valuesets" / "CodeSystem-efns-ivig-recommendation.json"


def test_every_definition_loads_and_validates():
    knowledge = load(ROOT)
    assert len(knowledge.resources) == len(FILES)


def test_every_recommendation_cites_its_sentence_and_level_and_has_a_topic_code(app):
    knowledge = app.extensions["ivig_cds"].knowledge
    code_system = json.loads(RECOMMENDATION_CODES.read_text())
    codes = {c["code"] for c in code_system["concept"]}
    assert code_system["count"] == len(code_system["concept"]) == len(codes)  # CodeSystem.count: its concepts, each once
    for rec in knowledge.recommendations:
        assert rec.documentation["url"] == "https://doi.org/10.1111/j.1468-1331.2008.02246.x"
        assert rec.topic["code"] == rec.action_id and rec.action_id in codes
        if rec.alternatives:  # a decision quotes the recommendations it decides between, each with its own level
            assert "citation" not in rec.documentation and rec.description
        else:
            assert rec.documentation["citation"] and rec.level["code"] in {"A", "B", "C", "GPP", "none", "statement", "service-rule"}


GUIDELINE = ROOT / "tests/fixtures/guideline.txt"  # a copy of ../shared/seeds/000_61063e0f6814f575.txt


def test_cited_sentences_are_the_guidelines_words(app):
    """Word for word, line breaks and hyphenation aside: a paraphrase would not be a citation."""
    guideline = _dehyphenate(" ".join(GUIDELINE.read_text().split()).replace("–", "-"))
    for rec in app.extensions["ivig_cds"].knowledge.recommendations:
        if not rec.alternatives:
            assert _dehyphenate(rec.documentation["citation"].replace("–", "-")) in guideline, rec.action_id


def _dehyphenate(text: str) -> str:
    return text.replace("- ", "").replace("-", "").replace(" ", "").replace("\ufffd", "")


@pytest.mark.parametrize("breakage, fault", [
    (lambda d: d["action"][0].pop("documentation"), "documentation citing the guideline is required"),
    (lambda d: d["action"][0]["documentation"][0].pop("citation"), "the guideline sentence) is required"),
    (lambda d: d["action"][0].update(extension=d["action"][0]["extension"][1:]),
     "cqf-strengthOfRecommendation extension (EFNS level) is required"),
    (lambda d: d["action"][0]["condition"][0]["expression"].update(expression="%conditions.where("), "does not evaluate"),
    (lambda d: d["action"][0]["condition"][0]["expression"].update(expression="%noSuchInput.exists()"),
     "reads %noSuchInput, declared neither"),
    (lambda d: d["action"][0]["condition"][0]["expression"].pop("description"), "needs a description (the condition in words)"),
    (lambda d: d["extension"][0]["valueExpression"].pop("description"), "variable gbsDiagnosis needs a description"),
    (lambda d: d["extension"].reverse(), "declared neither as a named definition before it"),  # a definition reads a later one
    (lambda d: d["extension"].append(d["extension"][0]), "variable gbsDiagnosis is declared twice"),
    (lambda d: d["extension"][0]["valueExpression"].update(name="conditions"), "is declared twice (or is a Library parameter)"),
    (lambda d: d["action"][0]["condition"][0]["expression"].update(
        expression="%conditions.where(code.memberOf('http://x/ValueSet/none')).exists()"), "names no loaded ValueSet"),
    (lambda d: d["action"][0].update(definitionCanonical="http://ivig-cds.org/fhir/ActivityDefinition/missing"),
     "is not a loaded ActivityDefinition"),
    (lambda d: d.update(action="not a list"), "not a valid FHIR PlanDefinition"),
    (lambda d: d["action"][0].update(title="x" * 140), "under 140 characters"),
    (lambda d: d["action"][0]["extension"].append({"url": "http://ivig-cds.org/fhir/StructureDefinition/shown-as",
                                                   "valueCode": "footnote"}), "shown-as must be one valueCode of card, line"),
])
def test_a_broken_definition_stops_start_up_naming_the_file_and_the_fault(tmp_path: Path, breakage, fault):
    target, definition = _knowledge_copy(tmp_path, "PlanDefinition-efns-ivig-gbs.json")
    breakage(definition)
    target.write_text(json.dumps(definition))
    with pytest.raises(DefinitionError) as info:
        load(tmp_path)
    assert info.value.path.endswith("PlanDefinition-efns-ivig-gbs.json")
    assert fault in info.value.fault


def _knowledge_copy(tmp_path: Path, name: str) -> tuple[Path, dict]:
    """A copy of the knowledge under tmp_path, and one of its files to break: its path and its resource."""
    shutil.copytree(ROOT / "valuesets", tmp_path / "valuesets")
    shutil.copytree(ROOT / "plandefinitions", tmp_path / "plandefinitions")
    target = tmp_path / "plandefinitions" / name
    return target, json.loads(target.read_text())


def test_a_name_means_one_thing_in_every_plan_definition(tmp_path: Path):
    """Two files may each declare a fact they both read, but only with the same expression."""
    target, definition = _knowledge_copy(tmp_path, "PlanDefinition-efns-ivig-mmn.json")
    steroids = next(e["valueExpression"] for e in definition["extension"] if e["valueExpression"]["name"] == "onCorticosteroids")
    steroids["expression"] = steroids["expression"].replace("corticosteroids", "prednisone")
    target.write_text(json.dumps(definition))
    with pytest.raises(DefinitionError, match="variable onCorticosteroids means .* elsewhere; one name, one meaning"):
        load(tmp_path)


def test_the_library_documents_exactly_the_inputs_the_service_supplies(tmp_path: Path):
    target, library = _knowledge_copy(tmp_path, "Library-efns-ivig-data-requirements.json")
    library["parameter"] = [p for p in library["parameter"] if p["name"] != "ivigCourses"]
    target.write_text(json.dumps(library))
    with pytest.raises(DefinitionError, match=r"undocumented \['ivigCourses'\]"):
        load(tmp_path)


def test_a_file_that_is_not_json_stops_start_up(tmp_path: Path):
    shutil.copytree(ROOT / "valuesets", tmp_path / "valuesets")
    (tmp_path / "plandefinitions").mkdir()
    (tmp_path / "plandefinitions" / "PlanDefinition-x.json").write_text("{not json")
    with pytest.raises(DefinitionError, match="PlanDefinition-x.json: not readable JSON"):
        load(tmp_path)


def test_an_activity_definition_must_be_a_daily_per_kg_course(tmp_path: Path):
    target, definition = _knowledge_copy(tmp_path, "ActivityDefinition-ivig-1-g-per-kg-daily-2-days.json")
    definition["dosage"][0]["doseAndRate"][0]["doseQuantity"]["code"] = "mg"
    target.write_text(json.dumps(definition))
    with pytest.raises(DefinitionError, match="g/kg"):
        load(tmp_path)


def test_a_data_requirement_the_service_cannot_query_stops_start_up(tmp_path: Path):
    target, library = _knowledge_copy(tmp_path, "Library-efns-ivig-data-requirements.json")
    library["dataRequirement"][2]["sort"] = [{"path": "valueQuantity", "direction": "descending"}]
    target.write_text(json.dumps(library))
    with pytest.raises(DefinitionError, match="dataRequirement weight filters or sorts on 'valueQuantity'"):
        load(tmp_path)


def test_the_library_must_say_where_the_dosing_weight_comes_from(tmp_path: Path):
    target, library = _knowledge_copy(tmp_path, "Library-efns-ivig-data-requirements.json")
    library["dataRequirement"][2]["id"] = "bodyWeight"
    target.write_text(json.dumps(library))
    with pytest.raises(DefinitionError, match="dataRequirement 'weight' the dosing weight is read from"):
        load(tmp_path)


@pytest.mark.parametrize("extension, fault", [
    ({"url": "http://ivig-cds.org/fhir/StructureDefinition/ivig-order-role", "valueCode": "maybe-ivig"}, "is not one of"),
    ({"url": "http://ivig-cds.org/fhir/StructureDefinition/text-pattern", "valueString": "immun(e"}, "not a regular expression"),
])
def test_an_order_rule_the_service_cannot_apply_stops_start_up(tmp_path: Path, extension, fault):
    shutil.copytree(ROOT / "valuesets", tmp_path / "valuesets")
    shutil.copytree(ROOT / "plandefinitions", tmp_path / "plandefinitions")
    target = tmp_path / "valuesets" / "ValueSet-hyperimmune-immunoglobulin.json"
    valueset = json.loads(target.read_text())
    valueset["extension"] = [e for e in valueset["extension"] if e["url"] != extension["url"]] + [extension]
    target.write_text(json.dumps(valueset))
    with pytest.raises(DefinitionError, match=fault):
        load(tmp_path)


def test_the_activity_definitions_give_the_route_a_suggestion_carries():
    for path in sorted((ROOT / "plandefinitions").glob("ActivityDefinition-*.json")):
        route = json.loads(path.read_text())["dosage"][0]["route"]
        assert route["coding"] == [{"system": "http://snomed.info/sct", "code": "47625008", "display": "Intravenous route"}]
