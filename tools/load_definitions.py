"""Load the definitions into a FHIR R4 server as one transaction Bundle (what docker-compose.yml runs once).

    python tools/load_definitions.py --fhir http://hapi:8080/fhir --wait 180
    python tools/load_definitions.py --fhir https://fhir.example.org/r4 --bundle bundle.json --token "$TOKEN"

--wait SECONDS polls BASE/metadata until it answers 200 (a starting HAPI takes a minute or more) and gives
up with exit 1. Without --bundle the Bundle is built in-process, as `ivig-cds export --bundle` builds it,
from the definitions under IVIG_CDS_KNOWLEDGE_ROOT (default: see cds_service/config.py). Every entry is a
PUT by id, so loading twice leaves one copy of each.

Servers cap the size of a transaction (Medplum: 50 updates), so the entries are sent, in the Bundle's
order (terminology first), as consecutive transactions of at most --max-entries (default 50; 0 = all in
one). Each is all-or-nothing; as every entry is an idempotent PUT, a run that stopped half-way is simply
run again. Prints one line per resource type; exits 1, naming the failing entries, when the server is
unreachable or refuses a transaction or any entry, and 2 when the Bundle cannot be built.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import requests

from cds_service.export import split_transaction

FHIR_JSON = "application/fhir+json"
POLL_SECONDS = 2.0
TRANSACTION_TIMEOUT = 300.0  # a JPA server expands ValueSets and indexes on write: allow it time
MAX_ENTRIES = 50  # Medplum refuses a transaction of more than 50 updates; HAPI has no default cap


class LoadError(Exception):
    """The server is unreachable or refused (part of) the Bundle; the message says which."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="load_definitions.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fhir", required=True, metavar="BASE", help="FHIR R4 base URL, e.g. http://hapi:8080/fhir")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="poll BASE/metadata until it answers 200, for at most this long (default: no waiting)")
    parser.add_argument("--bundle", type=Path, metavar="FILE",
                        help="transaction Bundle to send (default: built from the definitions, as `ivig-cds export --bundle`)")
    parser.add_argument("--token", help="bearer token to send with every request")
    parser.add_argument("--max-entries", type=int, default=MAX_ENTRIES, metavar="N",
                        help=f"at most N entries per transaction (default {MAX_ENTRIES}; 0 = the whole Bundle in one)")
    return parser


def _headers(token: str | None) -> dict[str, str]:
    headers = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def wait_for_server(base: str, seconds: float, token: str | None = None) -> None:
    """Return once GET base/metadata answers 200; raise LoadError after `seconds` without one."""
    deadline = time.monotonic() + seconds
    last = "no answer"
    while True:
        try:
            response = requests.get(f"{base}/metadata", headers=_headers(token), timeout=min(10.0, max(seconds, 1.0)))
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() + POLL_SECONDS > deadline:
            raise LoadError(f"{base}/metadata did not answer 200 within {seconds:g} s (last: {last})")
        time.sleep(POLL_SECONDS)


def build_bundle() -> dict:
    """The transaction Bundle of every definition, exactly as `ivig-cds export --bundle` writes it."""
    from cds_service.config import Settings
    from cds_service.export import transaction_bundle
    from cds_service.knowledge import load

    return transaction_bundle(load(Settings.from_env().knowledge_root))


def _outcome_text(resource: object) -> str:
    """The diagnostics of an OperationOutcome (or a short excerpt of anything else)."""
    if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
        issues = resource.get("issue") or []
        return "; ".join(str(i.get("diagnostics") or i.get("details", {}).get("text") or i.get("code")) for i in issues)
    return json.dumps(resource)[:500] if resource is not None else ""


def post_transaction(base: str, bundle: dict, token: str | None = None) -> list[tuple[str, str, str]]:
    """POST the Bundle; return (resourceType, request url, response status) per entry, in order.

    Raises LoadError when the server refuses the Bundle, answers something else than a transaction-response
    of as many entries, or any entry's status is not 200/201.
    """
    requests_sent = [entry["request"] for entry in bundle.get("entry", [])]
    try:
        response = requests.post(base, data=json.dumps(bundle).encode("utf-8"), headers=_headers(token),
                                 timeout=TRANSACTION_TIMEOUT)
    except requests.RequestException as exc:
        raise LoadError(f"POST {base} failed: {type(exc).__name__}: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        detail = _outcome_text(body) if body is not None else response.text[:500]
        raise LoadError(f"POST {base}: the server refused the transaction with HTTP {response.status_code}: {detail}")
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle" or body.get("type") != "transaction-response":
        raise LoadError(f"POST {base}: expected a transaction-response Bundle, got: {response.text[:500]}")
    answers = body.get("entry") or []
    if len(answers) != len(requests_sent):
        raise LoadError(f"POST {base}: {len(requests_sent)} entries sent, {len(answers)} answered")
    results, failures = [], []
    for sent, answer in zip(requests_sent, answers, strict=True):
        status = str((answer.get("response") or {}).get("status", ""))
        results.append((sent["url"].split("/", 1)[0], sent["url"], status))
        if not status.startswith(("200", "201")):
            failures.append(f"  {sent['method']} {sent['url']}: {status or 'no status'} "
                            f"{_outcome_text((answer.get('response') or {}).get('outcome'))}".rstrip())
    if failures:
        raise LoadError(f"{len(failures)} of {len(results)} entries failed:\n" + "\n".join(failures))
    return results


def summary(results: list[tuple[str, str, str]]) -> list[str]:
    """One line per resource type: how many were created (201) and updated (200)."""
    lines = []
    for kind in dict.fromkeys(kind for kind, _, _ in results):  # in load order
        counts = Counter(status[:3] for k, _, status in results if k == kind)
        lines.append(f"{kind}: {sum(counts.values())} ({counts['201']} created, {counts['200']} updated)")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    base = args.fhir.rstrip("/")
    try:
        bundle = json.loads(args.bundle.read_text(encoding="utf-8")) if args.bundle else build_bundle()
    except Exception as exc:  # unreadable file, broken definition, bad IVIG_CDS_* setting
        print(f"load_definitions: cannot build the Bundle: {exc}", file=sys.stderr)
        return 2
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        print("load_definitions: --bundle is not a transaction Bundle", file=sys.stderr)
        return 2
    entries = bundle.get("entry") or []
    parts = split_transaction(bundle, args.max_entries) if args.max_entries > 0 else [bundle]
    results: list[tuple[str, str, str]] = []
    try:
        if args.wait > 0:
            wait_for_server(base, args.wait, args.token)
        for part in parts:
            try:
                results += post_transaction(base, part, args.token)
            except LoadError as exc:
                raise LoadError(f"entries {len(results) + 1}-{len(results) + len(part['entry'])} of {len(entries)}"
                                f" ({len(results)} loaded before): {exc}") from exc
    except LoadError as exc:
        print(f"load_definitions: {exc}", file=sys.stderr)
        return 1
    for line in summary(results):
        print(line)
    print(f"loaded {len(results)} resources into {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
