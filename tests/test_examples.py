"""examples/: the requests the README tells a newcomer to send, each sent and its cards checked.

Every example is sent to the app in trial mode (no JWT, as `ivig-cds serve --trial` answers it); one is sent with the
README's own curl line to `ivig-cds serve --trial` started as the README says, and trial mode's refusal to listen
beyond loopback is checked on the real command."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from cds_service.app import create_app
from cds_service.config import ConfigurationError, Settings
from tests.conftest import ROOT
from tests.medplum import stop_process
from tests.service_process import free_port, wait_until_answering
from tools.write_examples import EXAMPLES

EXAMPLE_DIR = ROOT / "examples"
#: what each example is for: the recommendations (source.topic.code) its cards state, with their indicators
EXPECTED = {
    "gbs-order-select": {("GBS-1", "info"), ("GBS-2", "info")},
    "cidp-order-select": {("CIDP-severity", "info")},
    "myasthenia-exacerbation-order-select": {("MG-1", "info")},
    "ms-secondary-progressive-order-select": {("MS-3", "warning")},
    "dermatomyositis-order-select": {("DM-1", "info"), ("DM-2", "info")},
    "gbs-order-sign-as-guideline": set(),  # order-sign shows only what is wrong: nothing here
    "gbs-order-sign-overdose": {("GBS-1", "critical")},  # the departure, with the check on the course total in it
}


def example(name: str) -> dict:
    return json.loads((EXAMPLE_DIR / f"{name}.json").read_text(encoding="utf-8"))


def stated(cards: list[dict]) -> set[tuple[str, str]]:
    return {(card["source"]["topic"]["code"], card["indicator"]) for card in cards}


@pytest.fixture(scope="module")
def trial():
    return create_app(Settings.from_env({"IVIG_CDS_MODE": "trial", "IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT)})).test_client()


def test_the_examples_are_the_files_written_and_cover_both_hooks_and_several_chapters():
    assert {path.stem for path in EXAMPLE_DIR.glob("*.json")} == set(EXAMPLES) == set(EXPECTED)
    assert {example(name)["hook"] for name in EXAMPLES} == {"order-select", "order-sign"}
    chapters = {code.split("-")[0] for expected in EXPECTED.values() for code, _ in expected if not code.startswith("SAFE")}
    assert len(chapters) >= 4, chapters


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_answers_its_cards_without_a_jwt_in_trial_mode(trial, name):
    body = example(name)
    response = trial.post(f"/cds-services/ivig-{body['hook']}", json=body)
    assert response.status_code == 200, response.get_json()
    assert stated(response.get_json()["cards"]) == EXPECTED[name]


def test_trial_mode_refuses_to_listen_beyond_loopback():
    trial = Settings.from_env({"IVIG_CDS_MODE": "trial", "IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT)})
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        trial.check_listen_address(host)
    for host in ("0.0.0.0", "::", "10.0.1.11", "cds.hospital.example"):
        with pytest.raises(ConfigurationError, match="loopback only"):
            trial.check_listen_address(host)
    Settings.from_env({"IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT)}).check_listen_address("0.0.0.0")  # production: any


def test_trial_mode_trusts_no_jwt_and_calls_no_fhir_server():
    trial = Settings.from_env({"IVIG_CDS_MODE": "trial", "IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT)})
    assert not trial.auth.required and not trial.auth.trusted_issuers and not trial.auth.jwks
    assert not trial.may_call("https://fhir.example.org/r4")


def _readme_block(marker: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(rf"<!-- {marker} -->\n```sh\n(.*?)\n```", readme, re.S).group(1)


@pytest.mark.integration  # starts a process or a server (tests/tiers.py)
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (apt-get install -y curl)")
def test_the_readme_run_and_example_commands_give_cards(tmp_path):
    """`ivig-cds serve --trial` as the README's run command starts it (on a free port), and the README's curl line."""
    run = _readme_block("run-command").rpartition("&& ")[2]
    assert run.startswith("ivig-cds serve --trial")
    port = free_port()
    argv = [sys.executable, "-m", "cds_service.cli", *shlex.split(run)[1:]]
    argv[argv.index("--port") + 1] = str(port)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("IVIG_CDS_")}
    environment["IVIG_CDS_REPLAY_STORE"] = str(tmp_path / "jti.sqlite3")
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        discovery = wait_until_answering(process, f"http://127.0.0.1:{port}/cds-services", log)
        assert discovery.status_code == 200 and len(discovery.json()["services"]) == 2
        curl = _readme_block("example-command").replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        answer = subprocess.run(curl, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
        cards = json.loads(answer.stdout)["cards"]
        assert stated(cards) == EXPECTED["gbs-order-select"]
    finally:
        stop_process(process, grace=15)


@pytest.mark.integration  # starts a process or a server (tests/tiers.py)
def test_serve_trial_on_a_public_address_stops_with_the_reason():
    finished = subprocess.run([sys.executable, "-m", "cds_service.cli", "serve", "--trial", "--host", "0.0.0.0", "--port", "9"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2 and "loopback only" in finished.stderr


def test_the_readme_production_configuration_is_valid_production():
    """The README's deploy section: every line a setting the service accepts, in production mode."""
    block = _readme_block("production-env")
    environ = dict(line.split("=", 1) for line in block.splitlines() if line and not line.startswith("#"))
    settings = Settings.from_env({**environ, "IVIG_CDS_KNOWLEDGE_ROOT": str(ROOT)})
    assert settings.mode == "production" and settings.auth.required
    assert settings.public_url == "https://cds.example.org" and settings.auth.trusted_issuers == {"https://sandbox.cds-hooks.org"}
    assert settings.may_call("https://launch.smarthealthit.org/v/r4/fhir") and not settings.may_call("https://fhir.other.example")
