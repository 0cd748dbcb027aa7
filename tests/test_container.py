"""The container set-up, tested without Docker: what the image runs and what docker-compose.yml runs.

No Docker engine is needed (nor used). What is read from the files and run here:

* Dockerfile: its ENV, CMD and HEALTHCHECK are run as written, with the current venv's `ivig-cds`, on a free
  port instead of 8080 and with IVIG_CDS_KNOWLEDGE_ROOT=/app pointing at the repository; and its COPY lines are
  replayed into a temporary /app, `pip install .` (not editable) from there into a temporary venv, and the
  CMD started from that install, so the image's packaging (the definitions are not in the wheel) is covered.
* tools/load_definitions.py (the compose `load-definitions` command) against a real FHIR R4 server
  (tests/medplum.py), and against a closed port.
* docker-compose.yml: the three services and the loader's command line (parsed with the loader's own parser).

The files are read with well-kept parsers: dockerfile-parse (the Dockerfile), the Docker SDK's .dockerignore
matcher, PyYAML (docker-compose.yml).

Not covered: building the image (the python:3.11-slim base, apt/pip inside it, the non-root user), the
healthcheck as Docker schedules it, compose networking and start order, and HAPI itself (hapiproject/hapi).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from docker.utils.build import PatternMatcher
from dockerfile_parse import DockerfileParser

from tests.conftest import ROOT
from tests.medplum import running_fhir_server, stop_process

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
LOADER = ROOT / "tools" / "load_definitions.py"
IMAGE_ROOT = "/app"  # the image's WORKDIR, where the Dockerfile copies the definitions
GBS_PLAN = "http://ivig-cds.org/fhir/PlanDefinition/efns-ivig-gbs"
VENV_BIN = Path(sys.executable).parent


# --- reading the files --------------------------------------------------------------------------------


def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped (dockerfile-parse)."""
    return [(item["instruction"], item["value"]) for item in dockerfile().structure if item["instruction"] != "COMMENT"]


def dockerfile_env() -> dict[str, str]:
    """Every ENV of the Dockerfile, both forms and quoting as Docker reads them (dockerfile-parse)."""
    return dict(dockerfile().envs)


def dockerfile_json(keyword: str) -> list[str]:
    """The exec (JSON) form of CMD, or of HEALTHCHECK's CMD; the shell form would hide signals from gunicorn."""
    (arguments,) = [a for k, a in dockerfile_instructions() if k == keyword]
    if keyword == "HEALTHCHECK":
        arguments = arguments.split(" CMD ", 1)[1]
    argv = json.loads(arguments)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), f"{keyword} must be a JSON array"
    return argv


def dockerfile_copies() -> list[tuple[str, str]]:
    """(source, destination) of every COPY, as Docker resolves them: the destination made absolute against
    WORKDIR; a file copied to a folder (destination ending in "/" or ".") lands under its own name there;
    a folder's contents land in the destination."""
    copies, workdir = [], "/"
    for keyword, arguments in dockerfile_instructions():
        if keyword == "WORKDIR":
            workdir = arguments
        elif keyword == "COPY":
            *sources, destination = [w for w in shlex.split(arguments) if not w.startswith("--")]
            into_folder = destination.endswith(("/", ".")) or len(sources) > 1
            if not destination.startswith("/"):
                destination = f"{workdir.rstrip('/')}/{destination}"
            destination = os.path.normpath(destination)
            for source in sources:
                is_file = (ROOT / source).is_file()
                copies.append((source, f"{destination.rstrip('/')}/{Path(source).name}" if into_folder and is_file else destination))
    return copies


def docker_ignored(path: str) -> bool:
    """Does .dockerignore keep this context path out of the build? Docker's own rules, as the Docker SDK for Python
    applies them when it sends a build context."""
    rules = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.strip().startswith("#")]
    return PatternMatcher(rules).matches(path)


def compose_file() -> dict:
    """docker-compose.yml as data (PyYAML)."""
    with COMPOSE.open() as stream:
        return yaml.safe_load(stream)


def load_loader():
    spec = importlib.util.spec_from_file_location("load_definitions", LOADER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- running things -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image_env(knowledge_root: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any IVIG_CDS_* setting, plus the Dockerfile's ENV with /app mapped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVIG_CDS_")}
    for key, value in dockerfile_env().items():
        env[key] = str(knowledge_root) + value[len(IMAGE_ROOT):] if value.startswith(IMAGE_ROOT) else value
    env["IVIG_CDS_STORE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='ivig-cds-image-store-')}/store.sqlite3"  # not the host's /var/lib
    env.update(extra)
    return env


def image_command(bin_dir: Path, port: int) -> list[str]:
    """The Dockerfile's CMD with its program taken from bin_dir and --port set to `port`."""
    argv = dockerfile_json("CMD")
    program = shutil.which(argv[0], path=str(bin_dir))
    assert program, f"{argv[0]} is not in {bin_dir}"
    argv = [program, *argv[1:]]
    argv[argv.index("--port") + 1] = str(port)
    return argv


def start_and_get(argv: list[str], env: dict[str, str], cwd: Path, port: int, path: str = "/cds-services"):
    """Start the command, wait for the port, GET path; return (response, server process) - stop it after."""
    server = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2), server
        except requests.ConnectionError:
            if server.poll() is not None or time.monotonic() > deadline:
                stop(server)
                pytest.fail(f"{' '.join(argv)} did not start:\n{server.stdout.read()[-3000:]}")
            time.sleep(0.2)


def stop(server: subprocess.Popen) -> None:
    stop_process(server, grace=10)
    server.stdout.close()


def run_loader(*args: str, python: str = sys.executable, cwd: Path = ROOT, env: dict[str, str] | None = None,
               script: Path = LOADER) -> subprocess.CompletedProcess:
    return subprocess.run([python, str(script), *args], cwd=cwd, env=env or image_env(ROOT),
                          capture_output=True, text=True, timeout=120)


# --- the Dockerfile -----------------------------------------------------------------------------------


def test_dockerfile_is_small_and_conventional():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    env = dockerfile_env()
    assert env["IVIG_CDS_KNOWLEDGE_ROOT"] == IMAGE_ROOT
    assert "IVIG_CDS_MODE" not in env, "the image must default to production"
    assert ("WORKDIR", IMAGE_ROOT) in instructions and ("EXPOSE", "8080") in instructions
    users = [a for k, a in instructions if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the service must not run as root"
    installs = [a for k, a in instructions if k == "RUN" and "pip install" in a]
    assert installs and "--no-cache-dir" in installs[0] and not re.search(r"\s-e\s|--editable", installs[0])
    assert dockerfile_json("CMD") == ["ivig-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
    assert "/cds-services" not in dockerfile_json("HEALTHCHECK")[-1], "discovery answers 401 when it requires a JWT"


def test_the_image_gets_what_it_needs_and_no_tests():
    copies = dockerfile_copies()
    sources = {source.rstrip("/") for source, _ in copies}
    assert {"pyproject.toml", "cds_service", "plandefinitions", "valuesets", "tools/load_definitions.py"} <= sources
    assert not any(s == "tests" or s.startswith(("tests/", ".")) for s in sources)
    # the definitions land in IVIG_CDS_KNOWLEDGE_ROOT, the loader where the compose command runs it (WORKDIR)
    assert ("plandefinitions", f"{IMAGE_ROOT}/plandefinitions") in copies and ("valuesets", f"{IMAGE_ROOT}/valuesets") in copies
    assert ("tools/load_definitions.py", f"{IMAGE_ROOT}/tools/load_definitions.py") in copies
    for source in sources:  # .dockerignore must let every copied file through
        files = [source] if (ROOT / source).is_file() else [
            str(p.relative_to(ROOT)) for p in (ROOT / source).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files and not any(docker_ignored(f) for f in files), f"{source} is excluded by .dockerignore"
    for kept_out in (".venv/bin/python", ".git/HEAD", "tests/test_container.py", "tests/fhir_server/node_modules/x.js",
                     "cds_service/__pycache__/app.cpython-311.pyc"):
        assert docker_ignored(kept_out), f"{kept_out} would be sent to the build"


@pytest.mark.parametrize("mode, status", [("production", 401), ("development", 200)])
def test_the_image_start_command_serves_discovery(tmp_path, mode, status):
    """The CMD with the Dockerfile's ENV: discovery answers in every mode; production (the image's default) refuses a
    hook call without a JWT."""
    port = free_port()
    env = image_env(ROOT, **({"IVIG_CDS_MODE": mode} if mode == "development" else {}))
    # run outside the repository, as the installed image does not find the definitions from its working directory
    response, server = start_and_get(image_command(VENV_BIN, port), env, tmp_path, port)
    try:
        assert response.status_code == 200 and len(response.json()["services"]) == 2, response.text
        call = requests.post(f"http://127.0.0.1:{port}/cds-services/ivig-order-select", json={}, timeout=30)
        assert call.status_code == (status if status == 401 else 400), call.text  # development: the empty body's fault
    finally:
        stop(server)


def test_the_healthcheck_asks_the_service_for_liveness_without_a_jwt(tmp_path):
    probe = dockerfile_json("HEALTHCHECK")
    assert probe[0] == "python" and "8080" in probe[-1] and "/healthz" in probe[-1]
    port = free_port()
    probe = [str(VENV_BIN / "python"), *probe[1:-1], probe[-1].replace("8080", str(port))]
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0, "healthy with nothing listening"
    with socket.create_server(("127.0.0.1", port)):  # a port that accepts but never answers HTTP is not alive
        assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0, "healthy on a mute port"
    closed = image_env(ROOT, IVIG_CDS_DISCOVERY_REQUIRES_JWT="true")  # liveness must not depend on that setting
    response, server = start_and_get(image_command(VENV_BIN, port), closed, tmp_path, port)
    try:
        assert response.status_code == 401, response.text  # discovery, closed by the setting
        assert subprocess.run(probe, capture_output=True, text=True, timeout=30).returncode == 0
    finally:
        stop(server)


@pytest.fixture(scope="module")
def installed_image(tmp_path_factory):
    """The image's file system, replayed without Docker: the COPY lines into a temporary /app, then `pip install .`
    (not editable) from there into a temporary venv. Its dependencies come from the current venv via a .pth
    file (only `cds_service` itself is installed, so no download beyond pip's build backend)."""
    base = tmp_path_factory.mktemp("image")
    app = base / "app"
    for source, destination in dockerfile_copies():
        target = app / Path(destination).relative_to(IMAGE_ROOT)
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, target)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    site = Path(subprocess.run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-cache-dir", "."],
                          cwd=app, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pip install . failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    where = subprocess.run([str(bin_dir / "python"), "-c", "import cds_service; print(cds_service.__file__)"],
                           cwd=base, capture_output=True, text=True, check=True).stdout
    assert Path(where).resolve().is_relative_to(site.resolve()), f"not the installed package: {where}"
    return app, bin_dir


def test_the_installed_image_serves_with_its_env(installed_image, tmp_path):
    """A non-editable install finds the definitions only through IVIG_CDS_KNOWLEDGE_ROOT (ENV in the Dockerfile):
    the default looks beside the package, i.e. in site-packages. Started away from /app, so only ENV can work."""
    app, bin_dir = installed_image
    port = free_port()
    response, server = start_and_get(image_command(bin_dir, port), image_env(app, IVIG_CDS_MODE="development"),
                                     tmp_path, port)
    try:
        assert response.status_code == 200 and len(response.json()["services"]) == 2
    finally:
        stop(server)


def test_the_installed_image_loads_the_definitions_as_compose_runs_it(installed_image):
    """The compose `load-definitions` command, run in the replayed image (WORKDIR /app, its python, its ENV)."""
    app, bin_dir = installed_image
    command = compose_file()["services"]["load-definitions"]["command"]
    assert command[0] == "python"
    args = command[2:]
    with running_fhir_server() as fhir:
        args[args.index("--fhir") + 1] = fhir.base
        done = run_loader(*args, python=str(bin_dir / "python"), cwd=app, env=image_env(app), script=app / command[1])
        assert done.returncode == 0, done.stderr
        assert fhir.get(f"PlanDefinition?url={GBS_PLAN}").json()["entry"][0]["resource"]["id"] == "efns-ivig-gbs"


# --- tools/load_definitions.py ------------------------------------------------------------------------


def test_loader_loads_every_definition_into_a_real_fhir_server_once(tmp_path):
    expected = {}
    for path in sorted((ROOT / "valuesets").glob("*.json")) + sorted((ROOT / "plandefinitions").glob("*.json")):
        kind = json.loads(path.read_text())["resourceType"]
        expected[kind] = expected.get(kind, 0) + 1
    with running_fhir_server() as fhir:
        for _ in range(2):  # PUT by id: a second load leaves one copy of each
            done = run_loader("--fhir", fhir.base, "--wait", "30", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            lines = done.stdout.splitlines()
            for kind, count in expected.items():
                assert any(line.startswith(f"{kind}: {count} (") for line in lines), (kind, done.stdout)
            assert lines[-1] == f"loaded {sum(expected.values())} resources into {fhir.base}"
        found = fhir.get(f"PlanDefinition?url={GBS_PLAN}").json()
        assert [e["resource"]["id"] for e in found["entry"]] == ["efns-ivig-gbs"]
        assert len(fhir.get("PlanDefinition").json()["entry"]) == expected["PlanDefinition"]
        assert fhir.get("ValueSet/gbs").status_code == 200


def test_loader_sends_the_token_and_a_bundle_file(tmp_path):
    bundle = tmp_path / "bundle.json"
    done = subprocess.run([str(VENV_BIN / "ivig-cds"), "export", "--bundle", str(bundle)], cwd=tmp_path,
                          env=image_env(ROOT), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with running_fhir_server(require_token="s3cret") as fhir:
        refused = run_loader("--fhir", fhir.base, "--wait", "2", "--bundle", str(bundle))
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr
        done = run_loader("--fhir", fhir.base, "--bundle", str(bundle), "--token", "s3cret")
        assert done.returncode == 0, done.stderr
        assert fhir.get(f"PlanDefinition?url={GBS_PLAN}").json()["entry"]
        assert {r["authorization"] for r in fhir.request_log() if r["method"] == "POST"} == {"Bearer s3cret"}


def test_loader_reports_a_refused_transaction(tmp_path):
    bundle = tmp_path / "bad.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "ValueSet", "id": "one", "status": "active"},
         "request": {"method": "PUT", "url": "ValueSet/another"}}]}))
    with running_fhir_server() as fhir:
        done = run_loader("--fhir", fhir.base, "--bundle", str(bundle))
    assert done.returncode == 1 and done.stdout == ""
    assert "refused the transaction with HTTP 400" in done.stderr


def test_loader_names_failing_entries(monkeypatch, capsys):
    """A server that accepts the transaction but answers an entry with 4xx/5xx (a batch-minded server)."""
    loader = load_loader()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "ValueSet", "id": "a"}, "request": {"method": "PUT", "url": "ValueSet/a"}},
        {"resource": {"resourceType": "PlanDefinition", "id": "b"}, "request": {"method": "PUT", "url": "PlanDefinition/b"}}]}

    class Answer:
        status_code = 200
        text = ""

        @staticmethod
        def json():
            return {"resourceType": "Bundle", "type": "transaction-response", "entry": [
                {"response": {"status": "201 Created"}},
                {"response": {"status": "422 Unprocessable Entity", "outcome": {
                    "resourceType": "OperationOutcome", "issue": [{"diagnostics": "bad canonical"}]}}}]}

    monkeypatch.setattr(loader.requests, "post", lambda *a, **k: Answer())
    monkeypatch.setattr(loader, "build_bundle", lambda: bundle)
    assert loader.main(["--fhir", "http://fhir.example/r4"]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 entries failed" in err and "PUT PlanDefinition/b: 422 Unprocessable Entity bad canonical" in err
    assert "ValueSet/a" not in err


def test_loader_gives_up_waiting_for_a_closed_port():
    port = free_port()  # nothing listens there once the probe socket is closed
    started = time.monotonic()
    done = run_loader("--fhir", f"http://127.0.0.1:{port}/fhir", "--wait", "2")
    assert done.returncode == 1 and done.stdout == ""
    assert f"http://127.0.0.1:{port}/fhir/metadata did not answer 200 within 2 s" in done.stderr
    assert "Connection" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 30


# --- docker-compose.yml -------------------------------------------------------------------------------


def test_compose_runs_hapi_the_loader_and_the_service():
    services = compose_file()["services"]
    assert set(services) == {"hapi", "load-definitions", "ivig-cds"}
    hapi, loader, service = services["hapi"], services["load-definitions"], services["ivig-cds"]
    assert re.fullmatch(r"hapiproject/hapi:v\d+\.\d+\.\d+", hapi["image"]), "pin HAPI's version"
    assert hapi["environment"]["hapi.fhir.fhir_version"] == "R4"
    assert str(hapi["environment"]["hapi.fhir.cors.allowed_origin"]) == "*"
    assert service["build"] == "." and service["image"] == loader["image"] and loader["build"] == "."
    assert service["environment"]["IVIG_CDS_MODE"] == "development"
    assert "8080:8080" in service["ports"]
    assert "hapi" in service["depends_on"] and "hapi" in loader["depends_on"]
    text = COMPOSE.read_text()
    for setting in ("IVIG_CDS_TRUSTED_ISSUERS", "IVIG_CDS_JWKS_FILE", "IVIG_CDS_FHIR_SERVERS"):
        assert setting in text, f"the comment on production should name {setting}"


def test_compose_loader_command_matches_the_loader_and_hapi():
    services = compose_file()["services"]
    command = services["load-definitions"]["command"]
    assert command[:2] == ["python", "tools/load_definitions.py"] and (ROOT / command[1]).is_file()
    args = load_loader().build_parser().parse_args(command[2:])  # exits (SystemExit) on an unknown option
    assert args.bundle is None and args.wait >= 120  # HAPI takes a minute or more to start
    fhir = urlsplit(args.fhir)
    assert fhir.hostname == "hapi" and fhir.path == "/fhir"
    container_ports = {str(p).rsplit(":", 1)[-1] for p in services["hapi"]["ports"]}
    assert str(fhir.port) in container_ports, f"{args.fhir} is not HAPI's container port"
