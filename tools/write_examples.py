"""Write examples/*.json: CDS Hooks requests a newcomer can send to the service as they are (curl --data @FILE).

Each is one patient of the test catalogue (tests/patients.py), so the examples are the records the tests use, coded
as EHRs code them. Their dates are written relative to the day this runs: a body weight older than the service's
limit (90 days for an adult) gives the per-kg arithmetic but no one-click dose, so run this again to refresh them.
tests/test_examples.py sends every file and checks its cards.

    python tools/write_examples.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.patients import catalogue  # noqa: E402

#: file name -> catalogue patient: several chapters of the guideline, both hooks
EXAMPLES = {
    "gbs-order-select": "GBS, ICD-10-CM, 5 days from onset",
    "cidp-order-select": "CIDP, untreated, ICD-10-CM",
    "myasthenia-exacerbation-order-select": "Myasthenia, exacerbation G70.01",
    "ms-secondary-progressive-order-select": "MS secondary progressive",
    "dermatomyositis-order-select": "Dermatomyositis on prednisone",
    "gbs-order-sign-as-guideline": "GBS, WHO ICD-10, signed as guideline",
    "gbs-order-sign-overdose": "GBS, 10-fold overdose, signed",
}


def main() -> int:
    patients = catalogue()
    folder = ROOT / "examples"
    folder.mkdir(exist_ok=True)
    for name, patient in EXAMPLES.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(patients[patient], indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
