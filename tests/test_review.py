"""The review document: generated from the definitions, complete, and committed up to date."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cds_service.review import render
from tests.conftest import ROOT

COMMITTED = ROOT / "docs" / "review.md"


def test_every_recommendation_is_in_the_review_with_level_sentence_and_regimen(app):
    knowledge = app.extensions["ivig_cds"].knowledge
    document = render(knowledge)
    for rec in knowledge.recommendations:
        section = document.split(f"### {rec.action_id}: ", 1)[1].split("\n### ", 1)[0]
        if rec.alternatives:
            assert rec.description in section and all(a in section for a in rec.alternatives)
            continue
        assert rec.level_text in section and rec.documentation["citation"] in section
        assert ("**Regimen:** none stated" in section) != bool(rec.regimens)
    assert "«Guillain-Barré syndrome»" in document and "http://ivig-cds.org/fhir/ValueSet/gbs" in document


@pytest.mark.integration  # starts a process or a server (tests/tiers.py)
def test_the_committed_review_is_the_one_the_definitions_generate():
    """Regenerate with `ivig-cds review --out docs/review.md` after changing a definition."""
    done = subprocess.run([sys.executable, "-m", "cds_service.cli", "review"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == COMMITTED.read_text(encoding="utf-8")
