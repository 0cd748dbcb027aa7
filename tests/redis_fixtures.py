"""Redis for the tests: the machine's (127.0.0.1:6379, or the one IVIG_CDS_TEST_REDIS_URL names; one of this run's own
when it does not answer), each test under a key prefix of its own that is deleted afterwards; or a redis-server of
the test's own on a free port, for a test that stops and restarts it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.service_process import free_port

REDIS_URL = os.environ.get("IVIG_CDS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """The machine's Redis when it answers; else a redis-server of this run's own (when one is installed)."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
        yield REDIS_URL
        return
    except redis.RedisError:
        pass
    finally:
        client.close()
    server = OwnRedis(tmp_path_factory.mktemp("redis"))  # fails saying what to install when there is none
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture()
def redis_prefix(redis_url) -> Iterator[str]:
    """A key prefix no other run uses, on the shared Redis; its keys are deleted after the test."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    prefix = f"ivig-cds-test-{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


class OwnRedis:
    """A redis-server process of this test's own (no persistence), which the test may stop and start again."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is missing: install it with `apt-get install -y redis-server`")
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", str(self.folder)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert self.process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


@pytest.fixture()
def own_redis(tmp_path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
