"""A real FHIR R4 server for the tests: tests/fhir_server/server.mjs (Medplum's FhirRouter over an
in-memory repository) run with node, plus R4 validation of JSON files with Medplum's validator.

    from tests.medplum import running_fhir_server, validate_files

    with running_fhir_server(require_token="abc") as fhir:
        fhir.base                               # http://127.0.0.1:<port>/fhir/R4
        fhir.transaction({"resourceType": "Bundle", "type": "transaction", "entry": [...]})
        fhir.create({"resourceType": "Patient"})  # -> the stored resource, with its id
        fhir.control(status=500, paths=["Observation"], times=1)   # fault rules, see server.mjs
        fhir.control(delayMs=3000, paths=["Condition?patient=1"])
        fhir.control(malformed=True)  # or a string: the body to send
        fhir.control(reset=True)      # drop rules, the request log and all data
        fhir.request_log()            # [{"method", "target", "authorization"}, ...] seen so far

    validate_files(["plandefinitions/PlanDefinition-x.json"])  # [(path, ok, message)]

Needs node and npm; ``ensure_installed()`` runs ``npm ci`` the first time (node_modules missing).
"""
from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
SERVER_JS = SERVER_DIR / "server.mjs"
START_TIMEOUT = 60.0
FHIR_JSON = "application/fhir+json"

_install_lock = threading.Lock()


class MedplumUnavailable(RuntimeError):
    """node/npm missing, npm ci failed, or the server did not start."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MedplumUnavailable(
            f"'{name}' not found on PATH: the real-FHIR-server tests need Node.js (>= 20.19) and npm "
            f"to run {SERVER_JS.relative_to(SERVER_DIR.parent.parent)}"
        )
    return path


def ensure_installed(directory: Path = SERVER_DIR, package: str = "@medplum/fhir-router") -> None:
    """Install a test folder's locked packages (``npm ci``) when `package` is missing from its node_modules:
    tests/fhir_server by default, tests/fhirpath_js for the second FHIRPath opinion."""
    with _install_lock:
        _tool("node")
        if (directory / "node_modules" / package).is_dir():
            return
        result = subprocess.run(
            [_tool("npm"), "ci", "--no-audit", "--no-fund"],
            cwd=directory, capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0:
            raise MedplumUnavailable(f"npm ci in {directory} failed ({result.returncode}):\n"
                                     f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


@dataclass
class FhirServer:
    """A running server.mjs. ``base`` is the FHIR base URL (no trailing slash)."""

    base: str
    process: subprocess.Popen[str]
    token: str | None = None

    @property
    def root(self) -> str:
        """scheme://host:port, where /__control lives."""
        return self.base.split("/fhir/", 1)[0]

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def control(self, **knobs: Any) -> dict:
        """POST /__control with these knobs (delayMs, status, malformed, paths, times, requireToken,
        defaultCount, reset); returns the server's control state."""
        response = requests.post(f"{self.root}/__control", json=knobs, timeout=10)
        response.raise_for_status()
        return response.json()

    def request_log(self) -> list[dict]:
        """The FHIR requests the server has seen since start or the last reset."""
        response = requests.get(f"{self.root}/__control", timeout=10)
        response.raise_for_status()
        return response.json()["requests"]

    def transaction(self, bundle: dict) -> dict:
        """POST a transaction (or batch) Bundle to the base; returns the response Bundle."""
        response = requests.post(self.base, data=json.dumps(bundle), headers=self._headers(), timeout=30)
        if response.status_code != 200:
            raise AssertionError(f"transaction failed: HTTP {response.status_code} {response.text[:1000]}")
        return response.json()

    def create(self, resource: dict) -> dict:
        """Store one resource: PUT Type/id when it has an id (keeps the id), else POST Type."""
        kind = resource["resourceType"]
        if resource.get("id"):
            response = requests.put(f"{self.base}/{kind}/{resource['id']}", data=json.dumps(resource),
                                    headers=self._headers(), timeout=30)
        else:
            response = requests.post(f"{self.base}/{kind}", data=json.dumps(resource),
                                     headers=self._headers(), timeout=30)
        if response.status_code not in (200, 201):
            raise AssertionError(f"create {kind} failed: HTTP {response.status_code} {response.text[:1000]}")
        return response.json()

    def get(self, relative: str) -> requests.Response:
        """GET base/relative (e.g. "Condition?patient=1"), with the token when one is set."""
        return requests.get(f"{self.base}/{relative}", headers=self._headers(), timeout=30)


def _start(args: list[str], env: dict[str, str] | None) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [_tool("node"), str(SERVER_JS), *args], cwd=SERVER_DIR, env=env, text=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    lines: queue.Queue[str] = queue.Queue()
    errors: list[str] = []

    def pump(stream: Any, sink: Any) -> None:
        # Keep reading both pipes so a chatty server never blocks on a full one.
        for text in stream:
            sink(text)

    threading.Thread(target=pump, args=(process.stdout, lines.put), daemon=True).start()
    stderr_reader = threading.Thread(target=pump, args=(process.stderr, errors.append), daemon=True)
    stderr_reader.start()
    line = None
    with contextlib.suppress(queue.Empty):
        line = lines.get(timeout=START_TIMEOUT)
    if not line or not line.startswith("LISTENING "):
        stop_process(process)
        stderr_reader.join(timeout=5)
        raise MedplumUnavailable(f"FHIR server did not start within {START_TIMEOUT:g}s "
                                 f"(first line {line!r}):\n{''.join(errors)[-3000:]}")
    return process, line.split(" ", 1)[1].strip()


def stop_process(process: subprocess.Popen[str], *, grace: float = 5) -> None:
    """Terminate the process if it still runs, and kill it if it has not ended within `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def running_fhir_server(require_token: str | None = None) -> Iterator[FhirServer]:
    """Start server.mjs on a free port; yields a FhirServer; stops it on exit.

    With ``require_token``, FHIR requests need ``Authorization: Bearer <token>`` (else 401); the
    yielded object's own helpers (transaction, create, get) send it.
    """
    ensure_installed()
    env = dict(os.environ)
    env.pop("FHIR_REQUIRE_TOKEN", None)
    if require_token:
        env["FHIR_REQUIRE_TOKEN"] = require_token
    process, base = _start(["0"], env)
    try:
        yield FhirServer(base=base, process=process, token=require_token)
    finally:
        stop_process(process)


def validate_files(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[str, bool, str]]:
    """Validate FHIR R4 JSON files with Medplum's validateResource, in one node run.

    Returns (path, ok, message) per file, in order; message is "" or the warnings when ok, the
    errors when not.
    """
    names = [str(p) for p in paths]
    if not names:
        return []
    ensure_installed()
    absolute = [str(Path(n).resolve()) for n in names]  # the validator runs in SERVER_DIR
    result = subprocess.run([_tool("node"), str(SERVER_JS), "--validate", *absolute], cwd=SERVER_DIR,
                            capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith(("OK ", "FAIL "))]
    if len(lines) != len(names):
        raise MedplumUnavailable(f"validator printed {len(lines)} results for {len(names)} files "
                                 f"(exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    out = []
    for name, path, line in zip(names, absolute, lines, strict=True):
        if line.startswith("OK "):
            rest = line[len("OK ") + len(path):]
            out.append((name, True, rest.strip().removeprefix("(warnings: ").removesuffix(")")))
        else:
            out.append((name, False, line[len("FAIL ") + len(path):].removeprefix(": ")))
    return out
