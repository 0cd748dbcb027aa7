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
    counts = []
    for name, request in catalogue().items():
        hook = request["hook"]
        cards = service.call(f"ivig-{hook}", json.dumps(request))["cards"]
        counts.append(len(cards))
        if args.verbose:
            print(f"{name} ({hook}): {len(cards)}")
            for card in cards:
                print(f"    [{card['indicator']}] {card['summary']}")
    print(f"{len(counts)} patients, cards per IVIG order: mean {statistics.mean(counts):.2f}, max {max(counts)}")


if __name__ == "__main__":
    main()
