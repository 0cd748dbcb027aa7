"""Cards per IVIG order over the catalogue of test patients (tests/patients.py): what a CDS committee watches.

    python tools/card_counts.py [--verbose]

Prints the mean and maximum number of cards per hook call, and with --verbose each patient's cards
(indicator and summary). Calls go through the service without HTTP, in development settings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds_service.app import create_app  # noqa: E402
from cds_service.auth import AuthSettings  # noqa: E402
from cds_service.config import Settings  # noqa: E402
from tests.patients import catalogue  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    service = create_app(Settings(knowledge_root=ROOT, mode="development", auth=AuthSettings.development())).extensions["ivig_cds"]
    counts: dict[str, list[int]] = {"as catalogued": [], "order-select": [], "order-sign": []}
    for name, request in catalogue().items():
        for hook in (request["hook"], "order-select", "order-sign"):
            sent = {**request, "hook": hook, "context": dict(request["context"])}
            if hook == "order-sign":
                sent["context"].pop("selections", None)
            elif "selections" not in sent["context"]:
                first = sent["context"]["draftOrders"]["entry"][0]["resource"]
                sent["context"]["selections"] = [f"{first['resourceType']}/{first['id']}"]
            cards = service.call(f"ivig-{hook}", json.dumps(sent))["cards"]
            counts["as catalogued" if hook is request["hook"] else hook].append(len(cards))
            if args.verbose and hook is request["hook"]:
                print(f"{name} ({hook}): {len(cards)}")
                for card in cards:
                    print(f"    [{card['indicator']}] {card['summary']}")
    for label, found in counts.items():
        print(f"{len(found)} patients, {label}: cards per IVIG order mean {statistics.mean(found):.2f}, max {max(found)}")


if __name__ == "__main__":
    main()
