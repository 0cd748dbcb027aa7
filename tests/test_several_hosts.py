"""Two hosts behind one load balancer: two `ivig-cds serve` processes that share nothing but one real Redis (the
JWT replay store, under a key prefix of this run) and one real PostgreSQL (the card and feedback store, in a schema
of this run). A token replayed to the other host is refused, feedback sent at once to the host that did not return
the card is taken, and the feedback given on either host is in one `ivig-cds report`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime

import requests

from tests.conftest import ROOT
from tests.service_process import BODY, PUBLIC, SELECT, Server, serving, signed


def call(host: Server, token: str) -> requests.Response:
    return requests.post(host.base + SELECT, data=BODY, timeout=30,
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def give_feedback(host: Server, card: dict, outcome: str) -> None:
    entry = {"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": datetime.now(UTC).isoformat(timespec="seconds")}
    if outcome == "accepted":
        entry["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
    answer = requests.post(host.base + SELECT + "/feedback", json={"feedback": [entry]}, timeout=30,
                           headers={"Authorization": f"Bearer {signed(PUBLIC + SELECT + '/feedback')}"})
    assert answer.status_code == 200, answer.text


def test_two_hosts_share_the_replay_store_and_the_feedback_store(tmp_path, redis_url, redis_prefix, postgres_url):
    shared = {"IVIG_CDS_REPLAY_STORE": redis_url, "IVIG_CDS_REPLAY_KEY_PREFIX": redis_prefix,
              "IVIG_CDS_STORE_URL": postgres_url}
    with serving(tmp_path / "a", workers=1, **shared) as host_a, serving(tmp_path / "b", workers=1, **shared) as host_b:
        token = signed(PUBLIC + SELECT)
        first = call(host_a, token)
        assert first.status_code == 200
        replayed = call(host_b, token)
        assert replayed.status_code == 401 and replayed.json()["resourceType"] == "OperationOutcome"
        assert call(host_a, token).status_code == 401
        second = call(host_b, signed(PUBLIC + SELECT))
        assert second.status_code == 200

        card_a = next(c for c in first.json()["cards"] if c.get("suggestions"))
        card_b = next(c for c in second.json()["cards"] if c.get("suggestions"))
        # each card's feedback at once to the other host: recorded off the request path, still found there
        give_feedback(host_b, card_a, "accepted")
        give_feedback(host_a, card_b, "overridden")
        refusals = [line for line in host_b.log_lines() if line["logger"] == "cds_service.auth"]
        assert any("replayed" in line["message"] for line in refusals)

    out = tmp_path / "report.html"
    environment = {**os.environ, "IVIG_CDS_STORE_URL": postgres_url}
    done = subprocess.run([sys.executable, "-m", "cds_service.cli", "report", "--out", str(out)], check=False, cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    shown = len(first.json()["cards"]) + len(second.json()["cards"])
    totals = re.search(r'id="totals">(\d+) cards shown: (\d+) accepted, (\d+) overridden', page)
    assert totals is not None and tuple(map(int, totals.groups())) == (shown, 1, 1)
    code = card_a["source"]["topic"]["code"]
    assert card_b["source"]["topic"]["code"] == code  # the same call on both hosts: the same recommendation
    row = re.search(rf'<tr data-code="{re.escape(code)}">.*?</tr>', page, re.DOTALL)
    assert row is not None
    cells = dict(re.findall(r'data-col="(shown|accepted|overridden)">(\d+)<', row.group(0)))
    assert (cells["shown"], cells["accepted"], cells["overridden"]) == ("2", "1", "1"), json.dumps(cells)
