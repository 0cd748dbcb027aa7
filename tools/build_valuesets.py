#!/usr/bin/env python3
"""Build the FHIR R4 ValueSets in valuesets/ from the shared terminology table.

Usage:
    python tools/build_valuesets.py [path/to/codes.csv]

Default input: terminology/codes.csv, the project's own terminology table (each
code with its source); it began as ../shared/reference/terminology/codes.csv.
Specifications: terminology/valuesets/{id}.json, one reviewable file per ValueSet (title,
description paragraphs, which codes.csv concept_keys it takes and how they are narrowed, codes
matched exactly although they have descendants, codes broader than the set's meaning with what
else they cover, and the IVIG order role and text pattern of medication sets); shared description
paragraphs are in terminology/notes.json.
Output: valuesets/ValueSet-{id}.json, one file per specification.

Safety rules applied here:
  * Only rows whose `confidence` is exactly "verified" and whose `code` is
    non-empty are used. No code is ever added that is not in codes.csv.
  * Displays are copied verbatim from codes.csv.
  * A value set that ends up with no verified code is not written.
  * Everything left out because it was not verified is printed as a gap report.

The specifications and codes.csv are the source of truth; the generated ValueSets are committed
too (the service and FHIR servers read them), and a test fails when they differ from what this
script makes. Re-run it after codes.csv or a specification changes and review the diff.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from fhir.resources.R4B.valueset import ValueSet

from cds_service.orders import ORDER_ROLE
from cds_service.terminology import BROADER_CODE, TEXT_PATTERN

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO_ROOT / "terminology/codes.csv"
OUT_DIR = REPO_ROOT / "valuesets"
SPEC_DIR = REPO_ROOT / "terminology/valuesets"
NOTES_FILE = REPO_ROOT / "terminology/notes.json"

BASE_URL = "http://ivig-cds.org/fhir/ValueSet/"
VERSION = version("ivig-cds")  # the package metadata (pyproject.toml): one version for the service and its knowledge
DATE = "2026-11-24"
TIMESTAMP = "2026-11-24T00:00:00Z"
PUBLISHER = "IVIG-CDS"

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
NDC = "http://hl7.org/fhir/sid/ndc"

# Order of code systems inside compose.include and expansion.contains: classes (ATC) before products (RxNorm, NDC),
# so that a set's first code is its most general one; the service proposes the first code of the IVIG set when a
# PlanDefinition/$apply call brings no order to copy.
SYSTEM_ORDER = [SNOMED, ICD10CM, ICD10, ICD10PCS, LOINC, ATC, RXNORM, NDC]
SYSTEM_LABEL = {
    SNOMED: "SNOMED CT",
    ICD10CM: "ICD-10-CM",
    ICD10: "ICD-10",
    ICD10PCS: "ICD-10-PCS",
    LOINC: "LOINC",
    RXNORM: "RxNorm",
    ATC: "ATC",
    NDC: "NDC",
}

# ICD-10 notes in codes.csv that mark a category whose descendants count too.
CATEGORY_NOTES = ("category/non-billable (use descendants)", "category with subcodes")

Row = dict[str, str]
Coding = tuple[str, str]  # (system, code)

SPEC_KEYS = {"id", "title", "about", "shared_notes", "remarks", "sources", "exact_only", "broader",
             "order_role", "text_pattern"}
SOURCE_KEYS = {"concept_key", "only_system", "only_codes", "only", "exclude"}


class SpecError(ValueError):
    """A ValueSet specification under terminology/valuesets/ that cannot be built as written."""


def parse_coding(text: str, where: str) -> Coding:
    """A "system|code" string, as FHIR writes a coding in a search parameter."""
    system, sep, code = text.rpartition("|")
    if not sep or not system or not code:
        raise SpecError(f"{where}: {text!r} is not 'system|code'")
    return system, code


@dataclass(frozen=True)
class Source:
    """The rows of one codes.csv concept_key that a ValueSet takes, optionally narrowed."""
    concept_key: str
    only_system: str | None = None
    only_codes: frozenset[str] | None = None
    only: frozenset[Coding] | None = None
    exclude: frozenset[Coding] = frozenset()

    def keeps(self, row: Row) -> bool:
        coding = (row["system_uri"], row["code"])
        return ((self.only_system is None or row["system_uri"] == self.only_system)
                and (self.only_codes is None or row["code"] in self.only_codes)
                and (self.only is None or coding in self.only)
                and coding not in self.exclude)


@dataclass
class Spec:
    """One ValueSet as its reviewable specification says (terminology/valuesets/{id}.json)."""
    id: str
    title: str
    about: str  # markdown; source concept_keys and is-a codes are appended
    sources: list[Source]
    extra: list[str] = field(default_factory=list)  # closing remarks
    role: str | None = None  # what an order coded or worded in this set means for IVIG recognition (ORDER_ROLE)
    words: str | None = None  # a case-insensitive regular expression: free text that names a member (TEXT_PATTERN)
    exact_only: frozenset[Coding] = frozenset()  # categories whose descendants must NOT be matched
    broader: dict[Coding, str] = field(default_factory=dict)  # code broader than the set's meaning -> what else

    @property
    def concept_keys(self) -> list[str]:
        return [source.concept_key for source in self.sources]


def load_spec(path: Path, notes: dict[str, str]) -> Spec:
    """Read one specification file, refusing unknown keys so that a typo cannot silently drop a rule."""
    data = json.loads(path.read_text(encoding="utf-8"))
    where = path.name
    if unknown := set(data) - SPEC_KEYS:
        raise SpecError(f"{where}: unknown keys {sorted(unknown)}")
    if data.get("id") != path.stem:
        raise SpecError(f"{where}: id {data.get('id')!r} differs from the file name")
    sources = []
    for src in data["sources"]:
        if unknown := set(src) - SOURCE_KEYS:
            raise SpecError(f"{where}: unknown source keys {sorted(unknown)}")
        sources.append(Source(
            concept_key=src["concept_key"],
            only_system=src.get("only_system"),
            only_codes=frozenset(src["only_codes"]) if "only_codes" in src else None,
            only=frozenset(parse_coding(c, where) for c in src["only"]) if "only" in src else None,
            exclude=frozenset(parse_coding(c, where) for c in src.get("exclude", [])),
        ))
    missing_notes = [n for n in data.get("shared_notes", []) if n not in notes]
    if missing_notes:
        raise SpecError(f"{where}: shared notes {missing_notes} are not in {NOTES_FILE.name}")
    about = "\n\n".join([*data["about"], *(notes[n] for n in data.get("shared_notes", []))])
    return Spec(
        id=data["id"], title=data["title"], about=about, sources=sources,
        extra=list(data.get("remarks", [])), role=data.get("order_role"), words=data.get("text_pattern"),
        exact_only=frozenset(parse_coding(c, where) for c in data.get("exact_only", [])),
        broader={parse_coding(c, where): note for c, note in data.get("broader", {}).items()},
    )


def load_specs(spec_dir: Path = SPEC_DIR) -> list[Spec]:
    notes = json.loads(NOTES_FILE.read_text(encoding="utf-8")) if NOTES_FILE.exists() else {}
    return [load_spec(path, notes) for path in sorted(spec_dir.glob("*.json"))]


# --- building -----------------------------------------------------------------

def is_verified(row: Row) -> bool:
    return row["confidence"] == "verified" and row["code"] != ""


def wants_descendants(spec: Spec, row: Row) -> bool:
    """True if descendants of this code should be matched with an is-a filter."""
    system, code = row["system_uri"], row["code"]
    if (system, code) in spec.exact_only:
        return False
    if system in (ICD10, ICD10CM):
        return any(marker in row["note"] for marker in CATEGORY_NOTES)
    if system == ATC:
        return len(code) < 7
    return False


def pascal_case(value_set_id: str) -> str:
    return "".join(part.capitalize() for part in value_set_id.split("-"))


def select_rows(spec: Spec, rows: list[Row]) -> list[Row]:
    """Verified rows for a spec, in codes.csv order, deduplicated by system+code."""
    selected: dict[Coding, Row] = {}
    for row in rows:
        if not is_verified(row):
            continue
        if not any(src.concept_key == row["concept_key"] and src.keeps(row) for src in spec.sources):
            continue
        key = (row["system_uri"], row["code"])
        if key in selected and selected[key]["display"] != row["display"]:
            sys.exit(f"{spec.id}: {key} has two different displays in codes.csv")
        selected.setdefault(key, row)
    return list(selected.values())


def system_rank(system: str) -> tuple[int, str]:
    if system in SYSTEM_ORDER:
        return SYSTEM_ORDER.index(system), system
    return len(SYSTEM_ORDER), system


def describe(spec: Spec, descendant_rows: list[Row]) -> str:
    keys = ", ".join(f"`{key}`" for key in dict.fromkeys(spec.concept_keys))
    parts = [spec.about, *spec.extra]
    if descendant_rows:
        by_system: dict[str, list[str]] = {}
        for r in descendant_rows:
            label = SYSTEM_LABEL.get(r["system_uri"], r["system_uri"])
            by_system.setdefault(label, []).append(r["code"])
        codes = "; ".join(f"{label} {', '.join(c)}" for label, c in by_system.items())
        parts.append(
            f"Descendants of {codes} are included through is-a filters; the "
            "service matches them by code prefix, since the ICD-10 and ATC "
            "hierarchies follow the code."
        )
    parts.append(f"Source: codes.csv concept_keys {keys} (verified rows only).")
    return "\n\n".join(parts)


def compose_concept(spec: Spec, row: Row) -> dict:
    """A compose concept; a code broader than the set's meaning says what else it covers (BROADER_CODE)."""
    concept: dict = {"code": row["code"], "display": row["display"]}
    note = spec.broader.get((row["system_uri"], row["code"]))
    if note is not None:
        concept["extension"] = [{"url": BROADER_CODE, "valueString": f"{row['code']} {row['display']}: {note}"}]
    return concept


def build_value_set(spec: Spec, selected: list[Row]) -> dict:
    url = BASE_URL + spec.id
    by_system: dict[str, list[Row]] = {}
    for row in selected:
        by_system.setdefault(row["system_uri"], []).append(row)

    include, contains, descendant_rows = [], [], []
    for system in sorted(by_system, key=system_rank):
        system_rows = by_system[system]
        include.append({
            "system": system,
            "concept": [compose_concept(spec, r) for r in system_rows],
        })
        for row in system_rows:
            if wants_descendants(spec, row):
                descendant_rows.append(row)
                include.append({
                    "system": system,
                    "filter": [{"property": "concept", "op": "is-a", "value": row["code"]}],
                })
        contains += [{"system": system, "code": r["code"], "display": r["display"]}
                     for r in system_rows]

    extensions = ([{"url": ORDER_ROLE, "valueCode": spec.role}] if spec.role else []) + (
        [{"url": TEXT_PATTERN, "valueString": spec.words}] if spec.words else [])
    return {
        "resourceType": "ValueSet",
        "id": spec.id,
        **({"extension": extensions} if extensions else {}),
        "url": url,
        "version": VERSION,
        "name": pascal_case(spec.id),
        "title": spec.title,
        "status": "active",
        "experimental": False,
        "date": DATE,
        "publisher": PUBLISHER,
        "description": describe(spec, descendant_rows),
        "compose": {"include": include},
        "expansion": {
            "identifier": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}",
            "timestamp": TIMESTAMP,
            "total": len(contains),
            "contains": contains,
        },
    }


def read_rows(csv_path: Path) -> list[Row]:
    with csv_path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("codes_csv", nargs="?", type=Path, default=DEFAULT_CSV,
                        help="path to codes.csv (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder to write to (default: %(default)s)")
    parser.add_argument("--specs", type=Path, default=SPEC_DIR,
                        help="folder of ValueSet specifications (default: %(default)s)")
    args = parser.parse_args()
    csv_path, out_dir = args.codes_csv.resolve(), args.out
    rows = read_rows(csv_path)
    known_keys = {row["concept_key"] for row in rows}
    print(f"Read {len(rows)} rows from {csv_path}")

    specs = load_specs(args.specs)
    out_dir.mkdir(exist_ok=True)
    written, empty = [], []
    missing_keys: dict[str, list[str]] = {}
    for spec in specs:
        for key in spec.concept_keys:
            if key not in known_keys:
                missing_keys.setdefault(key, []).append(spec.id)
        out_path = out_dir / f"ValueSet-{spec.id}.json"
        selected = select_rows(spec, rows)
        chosen = {(r["system_uri"], r["code"]) for r in selected}
        if stale := (set(spec.broader) | spec.exact_only) - chosen:
            raise SpecError(f"{spec.id}: broader/exact_only name codes the set does not contain: {sorted(stale)}")
        if not selected:
            empty.append(spec)
            if out_path.exists():  # stale output from an earlier codes.csv
                out_path.unlink()
            continue
        resource = build_value_set(spec, selected)
        ValueSet.model_validate(resource)  # raises if not valid FHIR
        out_path.write_text(json.dumps(resource, indent=2, ensure_ascii=False) + "\n",
                            encoding="utf-8")
        written.append((out_path, len(selected)))

    print(f"\nWrote {len(written)} ValueSet files to {out_dir}:")
    for path, count in written:
        print(f"  {path.name} (codes: {count})")

    print("\nValue sets NOT written (no verified code):")
    for spec in empty:
        print(f"  {spec.id} (concept_keys: {', '.join(spec.concept_keys)})")
    if not empty:
        print("  none")

    print("\nConcept_keys not found in codes.csv:")
    for key, ids in missing_keys.items():
        print(f"  {key} (asked for by: {', '.join(ids)})")
    if not missing_keys:
        print("  none")

    print("\nGap report: rows left out because not verified "
          "(confidence is not 'verified', or the code is empty):")
    users: dict[str, list[str]] = {}
    for spec in specs:
        for key in dict.fromkeys(spec.concept_keys):
            users.setdefault(key, []).append(spec.id)
    gaps = 0
    for key, ids in users.items():
        left_out = [r for r in rows if r["concept_key"] == key and not is_verified(r)]
        if not left_out:
            continue
        print(f"  {key} (value sets: {', '.join(ids)})")
        for r in left_out:
            print(f"    {r['confidence']:<10} {r['system_uri']}  "
                  f"{r['code'] or '(no code)'}  {r['display']}")
            gaps += 1
    print(f"  {gaps} rows left out." if gaps else "  none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
