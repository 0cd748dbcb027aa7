"""Membership and broader-code notes, answered by cds_service.terminology from the ValueSets we ship.

Each population named in issue 10 is checked on the real ValueSets: codes a record carries fall in exactly
the sets the recommendation needs, and a WHO ICD-10 category broader than its disease says what else it covers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.terminology import Terminology
from tests.fhir_data import objects_in
from tests.patients import catalogue

REPO_ROOT = Path(__file__).resolve().parents[1]
BASE = "http://ivig-cds.org/fhir/ValueSet/"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"


@pytest.fixture(scope="module")
def terminology() -> Terminology:
    return Terminology(json.loads(p.read_text(encoding="utf-8"))
                       for p in sorted((REPO_ROOT / "valuesets").glob("ValueSet-*.json")))


def coding(system: str, code: str) -> dict:
    return {"system": system, "code": code}


@pytest.mark.parametrize("system, code, valueset", [
    (ICD10, "G61.8", "cidp"), (ICD10, "G61.8", "mmn"), (ICD10, "G72.4", "inclusion-body-myositis"),
    (ICD10, "G25.8", "stiff-person-syndrome"), (ICD10, "G70.8", "lems"), (ICD10, "M33.9", "dermatomyositis"),
    (ICD10CM, "M36.0", "dermatomyositis"), (ICD10CM, "G40.803", "landau-kleffner-syndrome"),
])
def test_a_broader_code_says_which_code_and_what_else_it_covers(terminology, system, code, valueset):
    note = terminology.broader_note(coding(system, code), BASE + valueset)
    assert note is not None
    assert "also covers" in note or "does not tell" in note
    assert note.split(" ", 1)[0] in code  # the note starts with the code it rests on (an ancestor for a descendant)


@pytest.mark.parametrize("system, code, valueset", [
    (ICD10CM, "G61.81", "cidp"), (ICD10CM, "G61.82", "mmn"), (SNOMED, "128209004", "cidp"),
    (ICD10, "F80.3", "landau-kleffner-syndrome"), (ICD10CM, "G72.41", "inclusion-body-myositis"),
])
def test_a_specific_code_has_no_broader_note(terminology, system, code, valueset):
    assert terminology.member_of(coding(system, code), BASE + valueset)
    assert terminology.broader_note(coding(system, code), BASE + valueset) is None


def test_no_note_for_a_coding_outside_the_valueset(terminology):
    assert terminology.broader_note(coding(ICD10, "G61.8"), BASE + "gbs") is None
    assert terminology.broader_note({"code": "G61.8"}, BASE + "cidp") is None


def test_the_note_is_the_one_in_the_valueset(terminology):
    cidp = json.loads((REPO_ROOT / "valuesets/ValueSet-cidp.json").read_text(encoding="utf-8"))
    written = [ext["valueString"] for inc in cidp["compose"]["include"] for c in inc.get("concept", [])
               for ext in c.get("extension", [])]
    assert written == [terminology.broader_note(coding(ICD10, "G61.8"), BASE + "cidp")]


IN, OUT = True, False


@pytest.mark.parametrize("system, code, valueset, expected", [
    # thrombosis: the guideline's jugular vein thrombosis, chronic and upper-limb DVT, cerebral venous, arterial
    (ICD10CM, "I82.C11", "thrombosis", IN), (ICD10CM, "I82.C29", "thrombosis", IN),
    (ICD10CM, "I82.501", "thrombosis", IN), (ICD10CM, "I82.621", "thrombosis", IN),
    (ICD10CM, "I82.A11", "thrombosis", IN), (ICD10CM, "I82.B12", "thrombosis", IN),
    (ICD10CM, "I67.6", "thrombosis", IN), (ICD10CM, "I63.6", "thrombosis", IN), (ICD10CM, "O22.52", "thrombosis", IN),
    (ICD10CM, "I26.99", "thrombosis", IN), (ICD10CM, "I74.3", "thrombosis", IN), (ICD10CM, "I21.4", "thrombosis", IN),
    (ICD10CM, "I22.2", "thrombosis", IN), (ICD10CM, "Z86.718", "thrombosis", IN), (ICD10CM, "I80.11", "thrombosis", IN),
    (ICD10, "I67.6", "thrombosis", IN), (ICD10, "I80.2", "thrombosis", IN), (SNOMED, "192759008", "thrombosis", IN),
    (SNOMED, "422504002", "thrombosis", IN), (SNOMED, "22298006", "thrombosis", IN),
    (ICD10CM, "I80.01", "thrombosis", OUT), (ICD10CM, "G45.9", "thrombosis", OUT),
    # ADEM is not every encephalitis
    (ICD10CM, "G04.81", "adem", OUT), (ICD10CM, "G04.01", "adem", IN), (ICD10, "G04.0", "adem", IN),
    # Landau-Kleffner in the codes records carry
    (ICD10, "F80.3", "landau-kleffner-syndrome", IN), (ICD10CM, "G40.804", "landau-kleffner-syndrome", IN),
    (ICD10CM, "G40.822", "landau-kleffner-syndrome", OUT), (ICD10CM, "G40.812", "landau-kleffner-syndrome", OUT),
    # myasthenia gravis: severity told apart
    (ICD10CM, "G70.00", "myasthenia-gravis-without-exacerbation", IN),
    (ICD10CM, "G70.00", "myasthenia-gravis-exacerbation", OUT),
    (ICD10CM, "G70.01", "myasthenia-gravis-exacerbation", IN),
    (ICD10CM, "G70.01", "myasthenia-gravis-without-exacerbation", OUT),
    (ICD10, "G70.0", "myasthenia-gravis-without-exacerbation", OUT), (ICD10, "G70.0", "myasthenia-gravis", IN),
    # paraproteinaemic neuropathy is coded as a polyneuropathy; MGUS is not a neuropathy
    (ICD10CM, "G62.9", "neuropathy", IN), (ICD10CM, "G63", "neuropathy", IN), (ICD10, "G62.9", "neuropathy", IN),
    (SNOMED, "42345000", "neuropathy", IN), (ICD10CM, "G62.9", "monoclonal-gammopathy", OUT),
    (ICD10, "G63.1", "monoclonal-gammopathy", OUT), (ICD10CM, "G61.81", "neuropathy", OUT),
    # dermatomyositis in neoplastic disease and unspecified dermatopolymyositis
    (ICD10CM, "M36.0", "dermatomyositis", IN), (ICD10CM, "M33.92", "dermatomyositis", IN),
    (ICD10CM, "M33.92", "dermatopolymyositis-unspecified", IN), (ICD10CM, "M33.92", "polymyositis", OUT),
    # pregnancy and the post-partum period
    (ICD10CM, "Z34.02", "pregnancy", IN), (ICD10CM, "O09.522", "pregnancy", IN), (ICD10CM, "Z3A.24", "pregnancy", IN),
    (ICD10, "Z35.8", "pregnancy", IN), (ICD10CM, "O99.355", "pregnancy", OUT),
    (ICD10CM, "O99.355", "pregnancy-or-postpartum", IN), (ICD10CM, "Z39.2", "pregnancy-or-postpartum", IN),
    (ICD10, "O99.3", "pregnancy-or-postpartum", IN), (ICD10CM, "Z34.90", "pregnancy-or-postpartum", IN),
    (ICD10CM, "O90.89", "postpartum", IN),
    # kidney disease: the guideline's chronic renal failure, and acute kidney failure for the service's check
    (ICD10CM, "N18.4", "chronic-kidney-disease", IN), (ICD10CM, "Z99.2", "chronic-kidney-disease", IN),
    (ICD10CM, "N17.9", "chronic-kidney-disease", OUT), (ICD10CM, "N17.9", "kidney-disease", IN),
    (SNOMED, "90688005", "chronic-kidney-disease", IN),
    # renal labs in mass and molar units, eGFR equations
    (LOINC, "77140-2", "creatinine", IN), (LOINC, "59826-8", "creatinine", IN), (LOINC, "2160-0", "creatinine", IN),
    (LOINC, "33914-3", "egfr", IN), (LOINC, "98979-8", "egfr", IN), (LOINC, "50384-7", "egfr", IN),
    (LOINC, "77140-2", "monitoring-labs", IN),
])
def test_population(terminology, system, code, valueset, expected):
    assert terminology.member_of(coding(system, code), BASE + valueset) is expected


def test_the_one_coding_shortcut_answers_as_the_whole_lookup_on_every_catalogue_concept(terminology):
    """concept_valuesets answers a one-coding concept from the memos; it must say what codings_in says, words included."""
    concepts = [o for request in catalogue().values() for o in objects_in(request)]
    concepts += [{"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "312617",
                              "display": "predniSONE 20 MG Oral Tablet"}]},
                 {"coding": [{"system": "urn:local", "code": "1"}], "text": "Privigen 10 % IV"}]
    assert len(concepts) > 1000
    for concept in concepts:
        assert terminology.concept_valuesets(concept) == frozenset(terminology.codings_in(concept)), concept
    assert BASE + "corticosteroids" in terminology.concept_valuesets(concepts[-2])  # by its display's words
    assert BASE + "ivig" in terminology.concept_valuesets(concepts[-1])  # by its text
