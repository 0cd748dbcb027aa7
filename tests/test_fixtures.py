"""The copies of shared references that the tests read stay identical to the originals."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

SHARED = ROOT.parent / "shared"
COPIES = {
    "tests/fixtures/guideline.txt": "seeds/000_61063e0f6814f575.txt",
    "tests/fixtures/order-select.example-R4.context.json": "reference/cds-hooks/derived/order-select.example-R4.context.json",
    "tests/fixtures/order-sign.example-R4.context.json": "reference/cds-hooks/derived/order-sign.example-R4.context.json",
}


@pytest.mark.parametrize("copy, original", COPIES.items())
def test_copy_matches_the_shared_original(copy, original):
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this checkout; the committed copy is used as it is")
    assert (ROOT / copy).read_bytes() == (SHARED / original).read_bytes()
