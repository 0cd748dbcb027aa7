"""The whole path as the CDS Hooks Sandbox uses it: gunicorn with two workers on a real socket, JWTs signed with
the Sandbox's key, no prefetch, the patient's data read from a real FHIR server, and replays across workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import jwt
import requests
from cryptography.hazmat.primitives import serialization

from tests.conftest import ROOT
from tests.fhir_data import PATIENT_ID, days_ago, gbs, hook_request, ivig_order, patient, weight
from tests.fhir_server_fixtures import load
from tests.medplum import running_fhir_server, stop_process
from tests.test_auth import KEYS

SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SANDBOX_KEY = serialization.load_pem_private_key((KEYS / "sandbox_ecprivkey.pem").read_bytes(), password=None)


def sandbox_jwt(aud: str) -> dict:
    now = int(time.time())
    token = jwt.encode({"iss": "https://sandbox.cds-hooks.org", "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
                       SANDBOX_KEY, algorithm="ES384",
                       headers={"kid": SANDBOX_KID, "jku": "https://sandbox.cds-hooks.org/.well-known/jwks.json"})
    return {"Authorization": f"Bearer {token}"}


def test_the_sandbox_path_end_to_end(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with running_fhir_server() as fhir:
        load(fhir, [patient(), gbs(onset=days_ago(3)), weight(70, when=days_ago(1))])
        env = {**os.environ, "IVIG_CDS_MODE": "development", "IVIG_CDS_FHIR_SERVERS": fhir.base,
               "IVIG_CDS_REPLAY_STORE": str(tmp_path / "jti.sqlite3")}
        server = subprocess.Popen([sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port), "--workers", "2"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    discovery = requests.get(f"{base}/cds-services", headers=sandbox_jwt(f"{base}/cds-services"), timeout=2)
                    break
                except requests.ConnectionError:
                    assert server.poll() is None and time.monotonic() < deadline, "the service did not start"
                    time.sleep(0.2)
            assert discovery.status_code == 200
            service_url = f"{base}/cds-services/{discovery.json()['services'][0]['id']}"

            # the Sandbox sends fhirServer (an open server) and no fhirAuthorization; here no prefetch at all
            body = hook_request([ivig_order()], fhirServer=fhir.base)
            assert body["context"]["patientId"] == PATIENT_ID
            headers = sandbox_jwt(service_url)
            answer = requests.post(service_url, json=body, headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
            first_line = next(c for c in answer.json()["cards"] if c["source"]["topic"]["code"] == "GBS-1")
            assert first_line["suggestions"][0]["label"].startswith("IVIG 28 g/day for 5 days")

            # the same token again, several times: whichever worker takes it, it is a replay
            replays = [requests.post(service_url, json=body, headers=headers, timeout=10).status_code for _ in range(6)]
            assert replays == [401] * 6
            # an unsigned call in development mode is answered; a token for another URL is not
            assert requests.post(service_url, json=body, timeout=10).status_code == 200
            assert requests.post(service_url, json=body, headers=sandbox_jwt(f"{base}/cds-services/other"), timeout=10).status_code == 401
        finally:
            stop_process(server, grace=10)
