"""The service behind a real reverse proxy: nginx (Debian's), started by the test on free ports with a config in a
temporary folder, terminating TLS with a certificate the test makes, in front of `ivig-cds serve`.

It shows what the proxy changes and what it must not: the EHR calls https://<nginx>/cds-services/..., the service
sees http://127.0.0.1:<port>/..., and a token is accepted when its `aud` names the URL the EHR called (the
configured public URL), refused when it names the internal URL or another deployment. nginx connects from
127.0.0.2, the one address configured as a trusted proxy: its X-Request-ID and X-Forwarded-For are believed (for
the logs), while the same headers sent straight to the service from 127.0.0.1 are not.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.medplum import stop_process
from tests.service_process import BODY, SELECT, Server, free_port, serving, signed

PROXY_ADDRESS = "127.0.0.2"  # nginx's outgoing address (proxy_bind): the trusted proxy

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
{user}
events {{ worker_connections 64; }}
http {{
    log_format proxied '$remote_addr $request_id "$request" $status';
    access_log {folder}/access.log proxied;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;

    upstream ivig_cds {{
        server 127.0.0.1:{upstream};
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {folder}/server.pem;
        ssl_certificate_key {folder}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        client_max_body_size 2m;

        location / {{
            proxy_pass http://ivig_cds;
            proxy_bind {proxy_address};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-ID $request_id;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail("nginx is missing: install Debian's with `apt-get install -y nginx-light` (or `nginx`); the test "
                    "starts its own nginx process, never the system service")
    return found


def make_certificates(folder: Path) -> Path:
    """A test CA and a server certificate it signs for 127.0.0.1 and localhost; returns the CA file to trust."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "IVIG-CDS test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])).issuer_name(ca_name)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                          x509.DNSName("localhost")]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    (folder / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    (folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return folder / "ca.pem"


@dataclass
class Deployment:
    public: str  # https://127.0.0.1:<nginx port>: what the EHR calls
    ca: Path
    service: Server
    nginx_log: Path

    def post(self, path: str, *, aud: str, json_body: bytes = BODY, **headers: str) -> requests.Response:
        return requests.post(self.public + path, data=json_body, verify=str(self.ca), timeout=30,
                             headers={"Authorization": f"Bearer {signed(aud)}", "Content-Type": "application/json", **headers})


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    binary = nginx_binary()
    folder = tmp_path_factory.mktemp("nginx")
    ca = make_certificates(folder)
    port = free_port()
    public = f"https://127.0.0.1:{port}"
    with serving(folder / "service", workers=1, public=public, IVIG_CDS_TRUSTED_PROXIES=PROXY_ADDRESS) as service:
        user = "user root root;" if os.geteuid() == 0 else ""  # as root, nginx's workers would be nobody, locked out of the folder
        conf = folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(folder=folder, user=user, upstream=service.port, port=port, proxy_address=PROXY_ADDRESS))
        process = subprocess.Popen([binary, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(public + "/healthz", verify=str(ca), timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                error_log = folder / "error.log"
                assert process.poll() is None and time.monotonic() < deadline, error_log.read_text() if error_log.exists() else ""
                time.sleep(0.1)
            yield Deployment(public, ca, service, folder / "access.log")
        finally:
            stop_process(process, grace=10)


def test_a_token_for_the_url_the_ehr_called_is_accepted_over_https_through_nginx(deployment):
    answer = deployment.post(SELECT, aud=deployment.public + SELECT)
    assert answer.status_code == 200 and answer.json()["cards"]
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")  # the public URL is https
    card = next(c for c in answer.json()["cards"] if c.get("suggestions"))
    feedback = json.dumps({"feedback": [{"card": card["uuid"], "outcome": "accepted", "acceptedSuggestions": [
        {"id": card["suggestions"][0]["uuid"]}], "outcomeTimestamp": "2026-11-24T10:00:00Z"}]}).encode()
    assert deployment.post(SELECT + "/feedback", aud=deployment.public + SELECT + "/feedback", json_body=feedback).status_code == 200
    discovery = requests.get(deployment.public + "/cds-services", verify=str(deployment.ca), timeout=10,
                             headers={"Authorization": f"Bearer {signed(deployment.public + '/cds-services')}"})
    assert discovery.status_code == 200 and discovery.json()["services"]


@pytest.mark.parametrize("audience", [
    "internal",  # the URL the service itself sees behind the proxy
    "https://cds.other-hospital.example",  # another deployment
    "http",  # the public host and port, without TLS
])
def test_a_token_minted_for_another_url_is_refused_through_nginx(deployment, audience):
    base = {"internal": deployment.service.base, "http": deployment.public.replace("https://", "http://")}.get(audience, audience)
    answer = deployment.post(SELECT, aud=base + SELECT, **{"X-Forwarded-Host": "cds.other-hospital.example"})
    assert answer.status_code == 401 and answer.json()["resourceType"] == "OperationOutcome"


def test_the_proxys_request_id_and_client_address_are_logged_and_a_clients_own_are_not(deployment):
    answer = deployment.post(SELECT, aud=deployment.public + SELECT,
                             **{"X-Request-ID": "chosen-by-the-client", "X-Forwarded-For": "203.0.113.9"})
    request_id = answer.headers["X-Request-ID"]
    assert answer.status_code == 200 and request_id != "chosen-by-the-client"
    deadline = time.monotonic() + 10
    while request_id not in deployment.nginx_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f" {request_id} \"POST {SELECT} HTTP/1.1\" 200" in deployment.nginx_log.read_text()  # nginx's own id
    (line,) = [line for line in deployment.service.log_lines() if line.get("request_id") == request_id
               and line["logger"] == "cds_service.access"]
    assert line["client"] == "127.0.0.1" and line["status"] == 200  # whom nginx served, not what the client wrote

    direct = requests.post(deployment.service.base + SELECT, data=BODY, timeout=30, headers={
        "Authorization": f"Bearer {signed(deployment.public + SELECT)}", "Content-Type": "application/json",
        "X-Request-ID": "forged-id", "X-Forwarded-For": "198.51.100.77"})
    assert direct.status_code == 200 and direct.headers["X-Request-ID"] != "forged-id"  # 127.0.0.1 is no proxy of ours
    (line,) = [line for line in deployment.service.log_lines() if line.get("request_id") == direct.headers["X-Request-ID"]
               and line["logger"] == "cds_service.access"]
    assert line["client"] == "127.0.0.1"
