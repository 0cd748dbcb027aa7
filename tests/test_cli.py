"""The console script: `ivig-cds evaluate` offline, and `ivig-cds serve` under gunicorn."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import ROOT
from tests.fhir_data import days_ago, gbs, hook_request, ivig_order, prefetch, weight

CLI = [sys.executable, "-m", "cds_service.cli"]


def test_evaluate_prints_the_response_for_a_request_file(tmp_path):
    request = tmp_path / "request.json"
    data = prefetch(conditions=[gbs()], weights=[weight(70, when=days_ago(1))])
    request.write_text(json.dumps(hook_request([ivig_order()], prefetch=data)))
    done = subprocess.run(CLI + ["evaluate", str(request)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    cards = json.loads(done.stdout)["cards"]
    gbs1 = next(c for c in cards if c["source"]["topic"]["code"] == "GBS-1")
    assert gbs1["suggestions"][0]["label"].startswith("IVIG 28 g/day for 5 days")


def test_evaluate_refuses_a_bad_request_with_the_reason(tmp_path):
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"hook": "order-select", "hookInstance": "x", "context": {}}))
    done = subprocess.run(CLI + ["evaluate", str(request)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "context.draftOrders is required" in done.stderr


@pytest.mark.parametrize("mode, status", [("production", 401), ("development", 200), ("trial", 200)])
def test_serve_runs_gunicorn_and_answers(tmp_path, mode, status):
    """Production (the default) refuses a hook call without a JWT; development and trial mode answer it. Discovery
    answers in every mode: it holds no patient data."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(CLI + ["serve", "--port", str(port), "--workers", "1"], cwd=ROOT,
                              env={**os.environ, "IVIG_CDS_MODE": mode},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/cds-services", timeout=1)
                break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert response.status_code == 200 and len(response.json()["services"]) == 2
        assert response.headers["Server"].startswith("gunicorn")
        call = requests.post(f"http://127.0.0.1:{port}/cds-services/ivig-order-select", timeout=30,
                             json=hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=[weight(70)])))
        assert call.status_code == status
        assert status == 401 or call.json()["cards"]
    finally:
        server.terminate()
        log = server.communicate(timeout=10)[0]
    assert "Booting worker" in log


def test_a_broken_definition_stops_serve_with_a_message(tmp_path):
    (tmp_path / "plandefinitions").mkdir()
    (tmp_path / "valuesets").mkdir()
    (tmp_path / "plandefinitions" / "PlanDefinition-x.json").write_text("{")
    done = subprocess.run(CLI + ["serve", "--port", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"IVIG_CDS_KNOWLEDGE_ROOT": str(tmp_path), "PATH": ""})
    assert done.returncode == 2 and "PlanDefinition-x.json" in done.stderr


def test_the_benchmark_script_runs_and_prints_its_figures():
    done = subprocess.run([sys.executable, "tools/benchmark.py", "--calls", "5"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "GBS, 70 kg, order-select" in done.stdout and "ratio busy record / plain GBS" in done.stdout
