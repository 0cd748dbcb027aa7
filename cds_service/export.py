"""The definitions as FHIR servers and IG tools take them: a transaction Bundle, or an NPM-style FHIR package."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from pathlib import Path

from . import __version__
from .knowledge import CANONICAL_BASE, KnowledgeBase

PACKAGE_NAME = "ivigcds.efns.ivig"
PACKAGE_VERSION = __version__
#: load order that lets a server check references as they arrive: terminology first, then what uses it
_ORDER = ("CodeSystem", "ValueSet", "Library", "ActivityDefinition", "PlanDefinition")


def _in_order(knowledge: KnowledgeBase) -> list[dict]:
    return sorted(knowledge.resources.values(), key=lambda r: (_ORDER.index(r["resourceType"]), r["id"]))


def transaction_bundle(knowledge: KnowledgeBase) -> dict:
    """Every definition, terminology first."""
    return put_transaction(_in_order(knowledge))


def put_transaction(resources: Iterable[dict]) -> dict:
    """A transaction that PUTs each resource by its id, so loading it twice leaves one copy of each."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources],
    }


def split_transaction(bundle: dict, max_entries: int) -> list[dict]:
    """The same transaction as several, each within a server's limit (Medplum takes at most 50 updates
    in one transaction). The order is kept, so terminology still arrives before what uses it."""
    entries = bundle["entry"]
    return [{**bundle, "entry": entries[i : i + max_entries]} for i in range(0, len(entries), max_entries)]


def package_files(knowledge: KnowledgeBase) -> dict[str, bytes]:
    """The files of the package's `package/` folder: package.json, .index.json and one file a resource."""
    resources = _in_order(knowledge)
    manifest = {
        "name": PACKAGE_NAME,
        "version": PACKAGE_VERSION,
        "description": "EFNS 2008 guideline on IVIG in neurological diseases as FHIR R4 PlanDefinitions, ActivityDefinitions, "
                       "ValueSets and a Library (IVIG-CDS).",
        "author": "IVIG-CDS",
        "canonical": CANONICAL_BASE,
        "fhirVersions": ["4.0.1"],
        "type": "Conformance",
        "dependencies": {"hl7.fhir.r4.core": "4.0.1"},
    }
    index = {
        "index-version": 1,
        "files": [
            {key: value for key, value in (
                ("filename", f"{r['resourceType']}-{r['id']}.json"), ("resourceType", r["resourceType"]), ("id", r["id"]),
                ("url", r.get("url")), ("version", r.get("version")),
            ) if value}
            for r in resources
        ],
    }
    files = {"package.json": manifest, ".index.json": index}
    files.update({f"{r['resourceType']}-{r['id']}.json": r for r in resources})
    return {name: (json.dumps(content, indent=2, ensure_ascii=False) + "\n").encode() for name, content in files.items()}


def write_package(knowledge: KnowledgeBase, folder: Path) -> Path:
    """Write folder/package/... and folder/<name>-<version>.tgz (what package loaders take); return the tarball."""
    files = package_files(knowledge)
    (folder / "package").mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / "package" / name).write_bytes(content)
    tarball = folder / f"{PACKAGE_NAME}-{PACKAGE_VERSION}.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return tarball
