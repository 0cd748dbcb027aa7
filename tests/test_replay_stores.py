"""The two JWT replay stores (replay.py) behave alike: the same tests run on the SQLite file of one host and on a
real Redis shared by several hosts. A "host" here is a JwtVerifier of its own, as each worker process and each
host has; they share nothing but the store."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec

from cds_service.auth import IssuerOverQuota, JwtVerifier, ReplayStoreUnavailable, Unauthorized
from tests.redis_fixtures import OwnRedis
from tests.service_process import free_port
from tests.test_auth import AUD, ISS, NOW, Clock, bearer, claims, public_jwk, rejected, settings, sign

OTHER = "https://other-ehr.example.org"


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def jwks(ec_key):
    return {"keys": [public_jwk(ec_key, "ec-1", "ES384")]}


@pytest.fixture()
def clock():
    return Clock()


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path) -> dict:
    """The replay settings of a store that every verifier of the test shares."""
    if request.param == "sqlite":
        return {"replay_store": str(tmp_path / "jti.sqlite3")}
    return {"replay_store": request.getfixturevalue("redis_url"), "replay_key_prefix": request.getfixturevalue("redis_prefix")}


def host(jwks, clock, store: dict, **overrides) -> JwtVerifier:
    return JwtVerifier(settings(jwks, **store, **overrides), now=clock)


def test_a_token_replayed_to_another_host_is_refused(jwks, clock, ec_key, store):
    first, second = host(jwks, clock, store), host(jwks, clock, store)
    token = bearer(sign(ec_key, claims()))
    assert first.verify(token, AUD)
    assert "replayed" in rejected(second, token)
    assert "replayed" in rejected(first, token)
    assert second.verify(bearer(sign(ec_key, claims())), AUD)  # another jti is welcome anywhere


def test_replay_is_detected_across_threads(jwks, clock, ec_key, store):
    verifiers = [host(jwks, clock, store) for _ in range(2)]
    token = bearer(sign(ec_key, claims()))
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def attempt(verifier: JwtVerifier) -> None:
        barrier.wait()
        try:
            verifier.verify(token, AUD)
            results.append(True)
        except Unauthorized:
            results.append(False)

    threads = [threading.Thread(target=attempt, args=(verifiers[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_the_quota_is_per_issuer_over_all_hosts_and_expired_entries_go(jwks, clock, ec_key, store):
    """One issuer over its quota is told to wait (429, until its oldest token expires); the others are not."""
    trusted = frozenset({ISS, OTHER})
    first, second = (host(jwks, clock, store, replay_quota_per_issuer=2, trusted_issuers=trusted) for _ in range(2))
    assert first.verify(bearer(sign(ec_key, claims())), AUD)
    clock.t = NOW + 10
    assert second.verify(bearer(sign(ec_key, claims(iat=int(NOW) + 10, exp=int(NOW) + 310))), AUD)
    with pytest.raises(IssuerOverQuota) as over:  # fails closed for this issuer rather than forgetting a jti
        first.verify(bearer(sign(ec_key, claims())), AUD)
    assert over.value.status == 429 and over.value.retry_after == 300 + 60 - 10
    assert second.verify(bearer(sign(ec_key, claims(iss=OTHER))), AUD)["iss"] == OTHER
    assert len(first._replay) == 3
    clock.t = NOW + 300 + 60  # the first token expires at exp + leeway: one place is free again
    assert second.verify(bearer(sign(ec_key, claims(iat=int(clock.t), exp=int(clock.t) + 300))), AUD)
    with pytest.raises(IssuerOverQuota):
        first.verify(bearer(sign(ec_key, claims(iat=int(clock.t), exp=int(clock.t) + 300))), AUD)
    clock.t = NOW + 2000  # all expired
    assert len(second._replay) == 0


@contextmanager
def sqlite_locked(path: str) -> Iterator[None]:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@contextmanager
def redis_stopped(server: OwnRedis) -> Iterator[None]:
    server.stop()
    try:
        yield
    finally:
        server.start()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_failing_store_is_a_503_with_retry_after_and_the_next_call_recovers(jwks, clock, ec_key, tmp_path, kind):
    """SQLite locked by another process past the timeout, or Redis gone; served again once it is back."""
    if kind == "sqlite":
        path = str(tmp_path / "jti.sqlite3")
        store, failing = {"replay_store": path}, (lambda: sqlite_locked(path))
    else:
        server = OwnRedis(tmp_path)
        server.start()
        store, failing = {"replay_store": server.url}, (lambda: redis_stopped(server))
    try:
        verifier = host(jwks, clock, store, replay_store_timeout_seconds=0.2)
        assert verifier.verify(bearer(sign(ec_key, claims())), AUD)
        token = bearer(sign(ec_key, claims()))
        with failing():
            with pytest.raises(ReplayStoreUnavailable) as failed:
                verifier.verify(token, AUD)
            with pytest.raises(ReplayStoreUnavailable):
                verifier.replay_store_ready()
        assert failed.value.status == 503 and failed.value.retry_after and failed.value.retry_after > 0
        verifier.replay_store_ready()
        assert verifier.verify(token, AUD)  # the refused token did not burn its jti
        assert "replayed" in rejected(verifier, token)
    finally:
        if kind == "redis":
            server.stop()


@pytest.mark.parametrize("unreachable", [
    lambda tmp_path: str(tmp_path / "no-such-folder" / "jti.sqlite3"),
    lambda tmp_path: f"redis://:s3cret-password@127.0.0.1:{free_port()}/0",
])
def test_a_store_that_cannot_be_opened_stops_start_up_without_showing_a_password(jwks, clock, tmp_path,
                                                                                   unreachable: Callable):
    with pytest.raises(ReplayStoreUnavailable, match="cannot open") as failed:
        JwtVerifier(settings(jwks, replay_store=unreachable(tmp_path), replay_store_timeout_seconds=0.5), now=clock)
    assert "s3cret" not in str(failed.value) and "s3cret" not in failed.value.reason


def test_redis_drops_an_issuers_record_when_its_last_token_expires(jwks, clock, ec_key, redis_url, redis_prefix):
    """Redis keeps the entries no longer than the tokens live, relative to the service's clock (not Redis's)."""
    verifier = host(jwks, clock, {"replay_store": redis_url, "replay_key_prefix": redis_prefix})
    assert verifier.verify(bearer(sign(ec_key, claims())), AUD)
    client = redis.Redis.from_url(redis_url)
    ttl_ms = client.pttl(redis_prefix + ISS)
    assert 0 < ttl_ms <= (300 + 60) * 1000
    assert client.zcard(redis_prefix + ISS) == 1
    assert [key.decode() for key in client.scan_iter(match=redis_prefix + "*")] == [redis_prefix + ISS]
    client.close()
