"""Checks on the committed ValueSets in valuesets/ against the project's terminology table (terminology/codes.csv)."""

import csv
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
from fhir.resources.R4B.valueset import ValueSet

CODES_CSV = REPO_ROOT / "terminology/codes.csv"  # every code with its source
BASE_URL = "http://ivig-cds.org/fhir/ValueSet/"
FILES = sorted((REPO_ROOT / "valuesets").glob("ValueSet-*.json"))


def verified_codings() -> set[tuple[str, str, str]]:
    with CODES_CSV.open(newline="", encoding="utf-8") as f:
        return {
            (row["system_uri"], row["code"], row["display"])
            for row in csv.DictReader(f)
            if row["confidence"] == "verified" and row["code"]
        }


VERIFIED = verified_codings()


def test_value_sets_exist():
    assert FILES, "no valuesets/ValueSet-*.json files"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_value_set(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    vs = ValueSet.model_validate(data)

    assert path.name == f"ValueSet-{vs.id}.json"
    assert vs.url == BASE_URL + vs.id

    contains = vs.expansion.contains
    assert vs.expansion.total == len(contains)

    codings = [(c.system, c.code, c.display) for c in contains]
    for include in vs.compose.include:
        codings += [(include.system, c.code, c.display) for c in include.concept or []]
    for coding in codings:
        assert coding in VERIFIED, f"not a verified row of codes.csv: {coding}"

    if vs.id == "ivig":
        codes = {code for _, code, _ in codings}
        filters = {f.value for inc in vs.compose.include for f in inc.filter or []}
        assert not {"J06BA", "J06BA01"} & (codes | filters)
