"""`ivig-cds serve` as deployed, started by a test: production mode (JWT required, one trusted EHR whose key the
test holds), on a free port, its output (JSON log lines) in a file; stopped when the test is done."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import ROOT
from tests.fhir_data import gbs, hook_request, ivig_order, prefetch, weight
from tests.medplum import stop_process
from tests.test_auth import public_jwk

ISS = "https://ehr.example.org"
PUBLIC = "https://cds.example.test"
SELECT = "/cds-services/ivig-order-select"
BODY = json.dumps(hook_request([ivig_order()], prefetch=prefetch(conditions=[gbs()], weights=[weight(70)]))).encode()
KEY = ec.generate_private_key(ec.SECP384R1())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signed(aud: str, **claims) -> str:
    """A fresh JWT of the trusted EHR for ``aud``, as an EHR makes one for each call."""
    now = int(time.time())
    payload = {"iss": ISS, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(payload, KEY, algorithm="ES384", headers={"kid": "ehr-1", "typ": "JWT"})


def wait_until_answering(process: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> requests.Response:
    """The first answer of a just-started server to GET url; fails with the end of its log if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)


@dataclass
class Server:
    port: int
    log: Path
    public: str = PUBLIC

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self) -> tuple[int, float]:
        """One legitimate hook call (a fresh JWT, as an EHR sends); its status and seconds."""
        started = time.perf_counter()
        response = requests.post(self.base + SELECT, data=BODY, timeout=30,
                                 headers={"Authorization": f"Bearer {signed(self.public + SELECT)}",
                                          "Content-Type": "application/json"})
        elapsed = time.perf_counter() - started
        assert response.status_code != 200 or response.json()["cards"]
        return response.status_code, elapsed

    def log_lines(self) -> list[dict]:
        """The log so far, one JSON object a line (a line that is not one fails the test)."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


@contextmanager
def serving(tmp_path: Path, *, workers: int = 2, public: str = PUBLIC, **env: str) -> Iterator[Server]:
    """`ivig-cds serve` in production mode (JWT required, one trusted EHR), on a free port."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(KEY, "ehr-1", "ES384")]}))
    port, log = free_port(), tmp_path / "server.log"
    environment = {**os.environ, "IVIG_CDS_TRUSTED_ISSUERS": ISS, "IVIG_CDS_JWKS_FILE": str(jwks), "IVIG_CDS_PUBLIC_URL": public,
                   "IVIG_CDS_REPLAY_STORE": str(tmp_path / "jti.sqlite3"), **env}
    environment.pop("IVIG_CDS_MODE", None)
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port), "--workers", str(workers)],
                                   cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_until_answering(process, f"http://127.0.0.1:{port}/healthz", log).status_code == 200
        yield Server(port, log, public)
    finally:
        stop_process(process, grace=15)
