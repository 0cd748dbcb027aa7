"""JWT verification of CDS Client calls (cds_service.auth): unit tests against JwtVerifier, plus the Flask hook."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sqlite3
import uuid
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, g, jsonify
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cds_service.auth import (
    SANDBOX_ISSUER,
    SANDBOX_JKU,
    SANDBOX_JWKS,
    AuthError,
    AuthSettings,
    IssuerOverQuota,
    JwtVerifier,
    ReplayStoreUnavailable,
    Unauthorized,
    require_jwt,
)
from cds_service.http_policy import error_response

KEYS = Path(__file__).resolve().parent / "keys"
NOW = 1_750_000_000.0
ISS = "https://ehr.example.org"
AUD = "https://cds.example.org/cds-services/ivig-order-sign"
JKU = "https://ehr.example.org/.well-known/jwks.json"
EVIL_JKU = "https://attacker.example.net/jwks.json"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"


# --- keys and tokens ------------------------------------------------------------------------------------------


def public_jwk(private_key, kid: str, alg: str) -> dict:
    algorithm = ECAlgorithm if alg.startswith("ES") else RSAAlgorithm
    jwk = json.loads(algorithm.to_jwk(private_key.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_ec_key():
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def jwks(ec_key, rsa_key):
    return {"keys": [public_jwk(ec_key, "ec-1", "ES384"), public_jwk(rsa_key, "rsa-1", "RS384")]}


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def clock():
    return Clock()


class Fetcher:
    """A fake jku fetch: records every call; serves the sets it is given."""

    def __init__(self, sets: dict[str, dict] | None = None) -> None:
        self.sets = sets or {}
        self.calls: list[tuple[str, float]] = []

    def __call__(self, url: str, timeout: float) -> dict:
        self.calls.append((url, timeout))
        if url not in self.sets:
            raise ConnectionError("no such host")
        return self.sets[url]

    def urls(self) -> list[str]:
        return [url for url, _ in self.calls]


def settings(jwks: dict | None, **overrides) -> AuthSettings:
    base = {"required": True, "trusted_issuers": frozenset({ISS}), "jwks": jwks, "jku_allowlist": frozenset({JKU}),
            "replay_store": ":memory:"}  # each verifier its own, so tests do not see each other's jti
    return AuthSettings(**{**base, **overrides})


def claims(**overrides) -> dict:
    base = {"iss": ISS, "aud": AUD, "iat": int(NOW), "exp": int(NOW) + 300, "jti": str(uuid.uuid4())}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key, payload: dict, *, alg: str = "ES384", kid: str | None = "ec-1", **header) -> str:
    headers = {"kid": kid, "typ": "JWT", **header} if kid is not None else {"typ": "JWT", **header}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_built(header: dict, payload: dict, signature: bytes = b"") -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}.{b64url(signature)}"


def bearer(token: str) -> str:
    return f"Bearer {token}"


@pytest.fixture()
def verifier(jwks, clock):
    return JwtVerifier(settings(jwks), fetch_jwks=Fetcher(), now=clock)


def rejected(verifier: JwtVerifier, header: str | None, audience: str = AUD) -> str:
    with pytest.raises(Unauthorized) as info:
        verifier.verify(header, audience)
    return info.value.reason


# --- acceptance -----------------------------------------------------------------------------------------------


def test_es384_token_is_accepted(verifier, ec_key):
    payload = claims(tenant="hospital-1")
    assert verifier.verify(bearer(sign(ec_key, payload)), AUD) == payload


def test_rs384_token_is_accepted(verifier, rsa_key):
    payload = claims()
    assert verifier.verify(bearer(sign(rsa_key, payload, alg="RS384", kid="rsa-1")), AUD) == payload


def test_bearer_scheme_is_case_insensitive(verifier, ec_key):
    assert verifier.verify("bearer " + sign(ec_key, claims()), AUD)["iss"] == ISS


def test_aud_list_containing_the_url_is_accepted(verifier, ec_key):
    payload = claims(aud=["https://other.example.org/x", AUD])
    assert verifier.verify(bearer(sign(ec_key, payload)), AUD) == payload


def test_typ_may_be_absent(verifier, ec_key):
    token = jwt.encode(claims(), ec_key, algorithm="ES384", headers={"kid": "ec-1", "typ": None})
    assert "typ" not in jwt.get_unverified_header(token)
    assert verifier.verify(bearer(token), AUD)["iss"] == ISS


def test_clock_skew_within_leeway_is_accepted(verifier, ec_key, clock):
    clock.t = NOW + 300 + 59  # expired 59 s ago: within the 60 s leeway
    assert verifier.verify(bearer(sign(ec_key, claims())), AUD)
    clock.t = NOW - 59  # issued 59 s "in the future"
    assert verifier.verify(bearer(sign(ec_key, claims())), AUD)


def test_no_header_when_not_required_gives_none(jwks, clock):
    v = JwtVerifier(settings(jwks, required=False), fetch_jwks=Fetcher(), now=clock)
    assert v.verify(None, AUD) is None


def test_a_header_sent_when_not_required_is_still_verified(jwks, clock, other_ec_key):
    v = JwtVerifier(settings(jwks, required=False), fetch_jwks=Fetcher(), now=clock)
    assert "signature" in rejected(v, bearer(sign(other_ec_key, claims())))


# --- rejection: the Authorization header and the JOSE header ---------------------------------------------------


def test_no_header_when_required(verifier):
    assert "no Authorization" in rejected(verifier, None)


@pytest.mark.parametrize("header", ["", "Basic dXNlcjpwYXNz", "Bearer", "Token abc.def.ghi", "Bearer a.b.c extra"])
def test_not_bearer(verifier, header):
    assert "Bearer" in rejected(verifier, header)


@pytest.mark.parametrize("token", ["garbage", "a.b", "a.b.c", "!!!.???.***", "e30.e30.", "x" * 20_000])
def test_garbage_token(verifier, token):
    rejected(verifier, bearer(token))


def test_alg_none_is_rejected(verifier):
    token = hand_built({"alg": "none", "typ": "JWT", "kid": "ec-1"}, claims())
    assert token.endswith(".")
    assert "alg 'none'" in rejected(verifier, bearer(token))


def test_hs256_signed_with_the_public_key_is_rejected(verifier, ec_key, rsa_key):
    for key, kid in ((ec_key, "ec-1"), (rsa_key, "rsa-1")):
        pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        header = {"alg": "HS256", "typ": "JWT", "kid": kid}
        unsigned = hand_built(header, claims()).rsplit(".", 1)[0]
        mac = hmac.new(pem, unsigned.encode(), hashlib.sha256).digest()
        assert "alg 'HS256'" in rejected(verifier, bearer(f"{unsigned}.{b64url(mac)}"))


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS384", "HS384", "EdDSA", "NONE", None])
def test_other_algorithms_are_rejected_before_verification(verifier, alg):
    header = {"typ": "JWT", "kid": "ec-1"} | ({"alg": alg} if alg else {})
    assert "not allowed" in rejected(verifier, bearer(hand_built(header, claims(), b"sig")))


def test_es256_really_signed_with_a_p256_key_is_rejected(jwks, clock):
    p256 = ec.generate_private_key(ec.SECP256R1())
    v = JwtVerifier(settings({"keys": [*jwks["keys"], public_jwk(p256, "p256", "ES256")]}), now=clock)
    assert "not allowed" in rejected(v, bearer(sign(p256, claims(), alg="ES256", kid="p256")))


def test_typ_other_than_jwt_is_rejected(verifier, ec_key):
    assert "typ" in rejected(verifier, bearer(sign(ec_key, claims(), typ="at+jwt")))
    assert "typ" in rejected(verifier, bearer(sign(ec_key, claims(), typ="JOSE")))
    assert "typ" in rejected(verifier, bearer(hand_built({"alg": "ES384", "kid": "ec-1", "typ": ["JWT"]}, claims())))


@pytest.mark.parametrize("typ", ["jwt", "application/jwt", "Application/JWT"])
def test_typ_is_compared_as_rfc_7519_says(verifier, ec_key, typ):
    """RFC 7519 5.1 / RFC 7515 4.1.9: a media type, compared without case, its "application/" prefix optional."""
    assert verifier.verify(bearer(sign(ec_key, claims(), typ=typ)), AUD)["iss"] == ISS


def test_missing_kid_is_rejected(verifier, ec_key):
    assert "no kid" in rejected(verifier, bearer(sign(ec_key, claims(), kid=None)))


def test_crit_header_is_rejected(verifier, ec_key):
    # PyJWT already refuses a crit it does not understand; we refuse any crit / b64 on top of that
    rejected(verifier, bearer(sign(ec_key, claims(), crit=["exp"], exp=1)))
    token = hand_built({"alg": "ES384", "typ": "JWT", "kid": "ec-1", "crit": ["b64"], "b64": False}, claims(), b"x" * 96)
    rejected(verifier, bearer(token))


def test_alg_must_suit_the_key(verifier, rsa_key, ec_key):
    # an RS384 token naming the EC key, and an ES384 token naming the RSA key: no usable key
    assert "no key" in rejected(verifier, bearer(sign(rsa_key, claims(), alg="RS384", kid="ec-1")))
    assert "no key" in rejected(verifier, bearer(sign(ec_key, claims(), alg="ES384", kid="rsa-1")))


def test_short_rsa_keys_are_refused(clock):
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    v = JwtVerifier(settings({"keys": [public_jwk(small, "small", "RS384")]}), now=clock)
    with pytest.warns(jwt.InsecureKeyLengthWarning):  # PyJWT only warns when signing with it...
        token = sign(small, claims(), alg="RS384", kid="small")
    assert "no key" in rejected(v, bearer(token))  # ...we refuse it before any verification


# --- rejection: signature and key discovery ------------------------------------------------------------------


def test_tampered_signature(verifier, ec_key):
    head, body, sig = sign(ec_key, claims()).split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[10] ^= 0x01
    assert "signature" in rejected(verifier, bearer(f"{head}.{body}.{b64url(bytes(raw))}"))


def test_tampered_payload(verifier, rsa_key):
    head, _, sig = sign(rsa_key, claims(), alg="RS384", kid="rsa-1").split(".")
    forged = b64url(json.dumps(claims(iss=ISS, aud=AUD, tenant="someone-else")).encode())
    assert "signature" in rejected(verifier, bearer(f"{head}.{forged}.{sig}"))


def test_token_signed_by_an_unknown_key_under_a_known_kid(verifier, other_ec_key):
    assert "signature" in rejected(verifier, bearer(sign(other_ec_key, claims())))


def test_unknown_kid_without_jku(verifier, ec_key):
    assert "unknown kid" in rejected(verifier, bearer(sign(ec_key, claims(), kid="nope")))


def test_kid_only_at_a_jku_not_on_the_allowlist_is_never_fetched(jwks, clock, other_ec_key):
    fetch = Fetcher({EVIL_JKU: {"keys": [public_jwk(other_ec_key, "evil", "ES384")]}})
    v = JwtVerifier(settings(jwks), fetch_jwks=fetch, now=clock)
    token = sign(other_ec_key, claims(), kid="evil", jku=EVIL_JKU)
    assert "not on the allowlist" in rejected(v, bearer(token))
    assert EVIL_JKU not in fetch.urls()
    assert fetch.calls == []


def test_jku_on_the_allowlist_is_fetched_once_then_served_from_cache(clock, other_ec_key):
    fetch = Fetcher({JKU: {"keys": [public_jwk(other_ec_key, "remote-1", "ES384")]}})
    v = JwtVerifier(settings(None), fetch_jwks=fetch, now=clock)
    for _ in range(2):
        assert v.verify(bearer(sign(other_ec_key, claims(), kid="remote-1", jku=JKU)), AUD)["iss"] == ISS
    assert fetch.calls == [(JKU, 2.0)]
    clock.t += 301  # jwks_cache_seconds (300) later the set is fetched again
    assert v.verify(bearer(sign(other_ec_key, claims(iat=int(clock.t), exp=int(clock.t) + 60), kid="remote-1", jku=JKU)), AUD)
    assert fetch.urls() == [JKU, JKU]


def test_configured_jwks_wins_over_jku(verifier, ec_key):
    fetcher = verifier._jwks_cache._fetch
    assert verifier.verify(bearer(sign(ec_key, claims(), jku=JKU)), AUD)
    assert fetcher.calls == []


def test_unknown_kid_triggers_one_refetch_for_key_rotation(clock, ec_key, other_ec_key):
    old, new = public_jwk(ec_key, "old", "ES384"), public_jwk(other_ec_key, "new", "ES384")
    fetch = Fetcher({JKU: {"keys": [old]}})
    v = JwtVerifier(settings(None), fetch_jwks=fetch, now=clock)
    assert v.verify(bearer(sign(ec_key, claims(), kid="old", jku=JKU)), AUD)
    clock.t += 31  # past jwks_refetch_min_seconds, well within the 300 s cache
    fetch.sets[JKU] = {"keys": [old, new]}  # the client rotated its keys
    t = int(clock.t)
    assert v.verify(bearer(sign(other_ec_key, claims(iat=t, exp=t + 60), kid="new", jku=JKU)), AUD)
    assert fetch.urls() == [JKU, JKU]
    # a kid that is in neither set: exactly one more fetch, then refused
    clock.t += 31
    assert "unknown kid" in rejected(v, bearer(sign(other_ec_key, claims(), kid="ghost", jku=JKU)))
    assert fetch.urls() == [JKU, JKU, JKU]


def test_made_up_kids_cannot_make_us_flood_the_jku(clock, ec_key):
    fetch = Fetcher({JKU: {"keys": [public_jwk(ec_key, "k", "ES384")]}})
    v = JwtVerifier(settings(None), fetch_jwks=fetch, now=clock)
    for i in range(20):
        rejected(v, bearer(sign(ec_key, claims(), kid=f"made-up-{i}", jku=JKU)))
    assert len(fetch.calls) == 1
    assert v.verify(bearer(sign(ec_key, claims(), kid="k", jku=JKU)), AUD)  # the real kid still works from cache
    assert len(fetch.calls) == 1


def test_failed_jku_fetch_is_a_refusal(clock, ec_key):
    def broken(url: str, timeout: float) -> dict:
        raise TimeoutError("slow")

    v = JwtVerifier(settings(None), fetch_jwks=broken, now=clock)
    assert "could not fetch" in rejected(v, bearer(sign(ec_key, claims(), kid="k", jku=JKU)))


def test_private_members_of_a_jwk_are_ignored(clock, ec_key):
    private = json.loads(ECAlgorithm.to_jwk(ec_key))
    v = JwtVerifier(settings({"keys": [{**private, "kid": "p"}]}), now=clock)
    assert "d" not in v._configured["p"][0]
    assert v.verify(bearer(sign(ec_key, claims(), kid="p")), AUD)


# --- rejection: claims -------------------------------------------------------------------------------------


def test_expired(verifier, ec_key, clock):
    clock.t = NOW + 300 + 61
    assert "expired" in rejected(verifier, bearer(sign(ec_key, claims())))


def test_iat_in_the_future(verifier, ec_key):
    assert "future" in rejected(verifier, bearer(sign(ec_key, claims(iat=int(NOW) + 120, exp=int(NOW) + 400))))


def test_nbf_in_the_future(verifier, ec_key):
    assert "nbf" in rejected(verifier, bearer(sign(ec_key, claims(nbf=int(NOW) + 120))))


def test_lifetime_too_long(verifier, ec_key):
    """Five minutes by default, the lifetime of the CDS Hooks Sandbox's tokens; an hour-long token is refused."""
    assert "lifetime" in rejected(verifier, bearer(sign(ec_key, claims(exp=int(NOW) + 3600))))
    assert "lifetime" in rejected(verifier, bearer(sign(ec_key, claims(exp=int(NOW) + 301))))
    assert verifier.verify(bearer(sign(ec_key, claims(exp=int(NOW) + 300))), AUD)


def test_exp_not_after_iat(verifier, ec_key):
    assert "lifetime" in rejected(verifier, bearer(sign(ec_key, claims(exp=int(NOW)))))


def test_wrong_aud(verifier, ec_key):
    for aud in ("https://cds.example.org/cds-services", AUD + "/", ["https://other.example.org"], None):
        assert "aud" in rejected(verifier, bearer(sign(ec_key, claims(aud=aud))))


def test_iss_not_allowlisted(verifier, ec_key):
    assert "iss" in rejected(verifier, bearer(sign(ec_key, claims(iss="https://evil.example.net"))))
    assert "iss" in rejected(verifier, bearer(sign(ec_key, claims(iss=None))))


@pytest.mark.parametrize("missing", ["jti", "exp", "iat"])
def test_missing_required_claim(verifier, ec_key, missing):
    rejected(verifier, bearer(sign(ec_key, claims(**{missing: None}))))


@pytest.mark.parametrize("bad", [{"jti": ""}, {"jti": 42}, {"jti": "x" * 300}, {"exp": "soon"}, {"iat": True}])
def test_malformed_claims(verifier, ec_key, bad):
    rejected(verifier, bearer(sign(ec_key, claims(**bad))))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(verifier, ec_key, constant):
    # json.loads would accept these; NaN in particular compares false with everything
    body = json.dumps(claims(exp=0)).replace('"exp": 0', f'"exp": {constant}')
    unsigned = f"{b64url(json.dumps({'alg': 'ES384', 'typ': 'JWT', 'kid': 'ec-1'}).encode())}.{b64url(body.encode())}"
    signature = ECAlgorithm(ECAlgorithm.SHA384).sign(unsigned.encode(), ec_key)
    assert "JSON" in rejected(verifier, bearer(f"{unsigned}.{b64url(signature)}"))


# --- replay ------------------------------------------------------------------------------------------------


def test_replayed_jti_is_rejected(verifier, ec_key):
    token = sign(ec_key, claims())
    assert verifier.verify(bearer(token), AUD)
    assert "replayed" in rejected(verifier, bearer(token))


def test_same_jti_in_a_freshly_signed_token_is_rejected(verifier, ec_key, rsa_key):
    payload = claims()
    assert verifier.verify(bearer(sign(ec_key, payload)), AUD)
    assert "replayed" in rejected(verifier, bearer(sign(rsa_key, {**payload, "exp": payload["exp"] - 1}, alg="RS384", kid="rsa-1")))


def test_a_rejected_token_does_not_burn_its_jti(verifier, ec_key):
    payload = claims()
    rejected(verifier, bearer(sign(ec_key, {**payload, "aud": "https://elsewhere.example.org"})))
    assert verifier.verify(bearer(sign(ec_key, payload)), AUD)


def test_replay_store_quota_is_per_issuer_and_evicts_expired_entries(jwks, clock, ec_key):
    """One issuer over its quota is told to wait (429, until its oldest token expires); the others are not."""
    other = "https://other-ehr.example.org"
    v = JwtVerifier(settings(jwks, replay_quota_per_issuer=2, trusted_issuers=frozenset({ISS, other})), now=clock)
    for _ in range(2):
        assert v.verify(bearer(sign(ec_key, claims())), AUD)
    with pytest.raises(IssuerOverQuota) as over:  # fails closed for this issuer rather than forgetting a jti
        v.verify(bearer(sign(ec_key, claims())), AUD)
    assert over.value.status == 429 and over.value.retry_after == 300 + 60
    assert v.verify(bearer(sign(ec_key, claims(iss=other))), AUD)["iss"] == other
    clock.t = NOW + 300 + 60  # the first issuer's entries expire at exp + leeway
    t = int(clock.t)
    assert v.verify(bearer(sign(ec_key, claims(iat=t, exp=t + 300))), AUD)
    assert len(v._replay) == 1  # the new one: all three earlier ones expired (and were evicted)


def test_a_store_older_than_the_counts_is_counted_when_opened(jwks, clock, ec_key, tmp_path):
    store = tmp_path / "jti.sqlite3"
    with sqlite3.connect(store) as old:  # the schema before per-issuer counts
        old.execute("CREATE TABLE seen (iss TEXT, jti TEXT, expires REAL, PRIMARY KEY (iss, jti))")
        old.executemany("INSERT INTO seen VALUES (?, ?, ?)", [(ISS, f"old-{i}", NOW + 100) for i in range(2)])
    v = JwtVerifier(settings(jwks, replay_store=str(store), replay_quota_per_issuer=3), now=clock)
    assert v.verify(bearer(sign(ec_key, claims())), AUD)
    with pytest.raises(IssuerOverQuota):
        v.verify(bearer(sign(ec_key, claims())), AUD)


def test_a_locked_replay_store_is_a_503_with_retry_after_and_recovers(jwks, clock, ec_key, tmp_path):
    """Another process holding the store's write lock past the timeout: 503, not 500; served again once it lets go."""
    store = str(tmp_path / "jti.sqlite3")
    v = JwtVerifier(settings(jwks, replay_store=store, replay_store_timeout_seconds=0.05), now=clock)
    assert v.verify(bearer(sign(ec_key, claims())), AUD)
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    token = bearer(sign(ec_key, claims()))
    with pytest.raises(ReplayStoreUnavailable) as failed:
        v.verify(token, AUD)
    assert failed.value.status == 503 and failed.value.retry_after and failed.value.retry_after > 0
    holder.execute("ROLLBACK")
    holder.close()
    assert v.verify(token, AUD)  # the refused token did not burn its jti
    assert "replayed" in rejected(v, token)


def test_a_replay_store_that_cannot_be_opened_stops_start_up(jwks, clock, tmp_path):
    with pytest.raises(ReplayStoreUnavailable, match="cannot open"):
        JwtVerifier(settings(jwks, replay_store=str(tmp_path / "no-such-folder" / "jti.sqlite3")), now=clock)


def test_a_replay_to_another_worker_is_caught(jwks, clock, ec_key, tmp_path):
    """gunicorn runs several worker processes; each has its own verifier, all share the host's replay store."""
    store = str(tmp_path / "jti.sqlite3")
    worker_1 = JwtVerifier(settings(jwks, replay_store=store), now=clock)
    worker_2 = JwtVerifier(settings(jwks, replay_store=store), now=clock)
    token = bearer(sign(ec_key, claims()))
    assert worker_1.verify(token, AUD)
    assert "replayed" in rejected(worker_2, token)


# --- development mode: the CDS Hooks Sandbox -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_private_key():
    return serialization.load_pem_private_key((KEYS / "sandbox_ecprivkey.pem").read_bytes(), password=None)


def test_embedded_sandbox_jwks_is_the_reference_copy():
    assert json.loads((KEYS / "sandbox_jwks.json").read_text()) == SANDBOX_JWKS
    shared = Path(__file__).resolve().parents[2] / "shared/reference/cds-hooks/cds-hooks-sandbox/jwks.json"
    if shared.exists():
        assert json.loads(shared.read_text()) == SANDBOX_JWKS


def test_published_sandbox_private_key_matches_its_jwks(sandbox_private_key):
    public = json.loads(ECAlgorithm.to_jwk(sandbox_private_key.public_key()))
    (published,) = SANDBOX_JWKS["keys"]
    assert (public["crv"], public["x"], public["y"]) == (published["crv"], published["x"], published["y"])


def test_development_settings_trust_exactly_the_sandbox():
    dev = AuthSettings.development()
    assert dev.required is False
    assert dev.trusted_issuers == {SANDBOX_ISSUER} == {"https://sandbox.cds-hooks.org"}
    assert dev.jku_allowlist == {SANDBOX_JKU} == {"https://sandbox.cds-hooks.org/.well-known/jwks.json"}
    assert [k["kid"] for k in dev.jwks["keys"]] == [SANDBOX_KID]
    assert dev.jwks is not SANDBOX_JWKS  # a copy: nobody can widen the trust by mutating settings


def test_production_defaults_trust_nobody(ec_key, clock):
    prod = AuthSettings()
    assert (prod.required, prod.trusted_issuers, prod.jwks, prod.jku_allowlist) == (True, frozenset(), None, frozenset())
    assert (prod.leeway_seconds, prod.max_lifetime_seconds, prod.jwks_cache_seconds, prod.jwks_timeout_seconds) == (60, 300, 300, 2.0)
    v = JwtVerifier(prod, fetch_jwks=Fetcher(), now=clock)
    rejected(v, None)
    rejected(v, bearer(sign(ec_key, claims(iss=SANDBOX_ISSUER), kid=SANDBOX_KID, jku=SANDBOX_JKU)))


def sandbox_token(key, audience: str, now: float, **extra) -> str:
    """A token as the Sandbox makes it (src/retrieve-data-helpers/jwt-generator.js): 5-minute life, uuid jti."""
    payload = {
        "iss": SANDBOX_ISSUER,
        "sub": "sandbox-client-id",
        "aud": audience,
        "exp": round(now + 300),
        "iat": round(now),
        "jti": str(uuid.uuid4()),
        **extra,
    }
    return jwt.encode(payload, key, algorithm="ES384", headers={"typ": "JWT", "kid": SANDBOX_KID, "jku": SANDBOX_JKU})


def test_development_mode_accepts_a_token_signed_with_the_real_sandbox_key(sandbox_private_key, clock):
    fetch = Fetcher()
    v = JwtVerifier(AuthSettings.development(), fetch_jwks=fetch, now=clock)
    claims_ = v.verify(bearer(sandbox_token(sandbox_private_key, AUD, NOW)), AUD)
    assert claims_["iss"] == SANDBOX_ISSUER
    assert fetch.calls == []  # the bundled copy of the Sandbox JWKS serves its kid: no network


def test_development_mode_rejects_own_key_carrying_the_sandbox_kid(other_ec_key, clock):
    v = JwtVerifier(AuthSettings.development(), fetch_jwks=Fetcher(), now=clock)
    assert "signature" in rejected(v, bearer(sandbox_token(other_ec_key, AUD, NOW)))


# --- the Flask hook --------------------------------------------------------------------------------------------


@pytest.fixture()
def flask_client(jwks, clock):
    app = Flask(__name__)
    app.register_error_handler(AuthError, error_response)  # as the app does (http_policy)
    app.before_request(require_jwt(JwtVerifier(settings(jwks), fetch_jwks=Fetcher(), now=clock), "https://cds.example.org"))

    @app.post("/cds-services/ivig-order-sign")
    def service():
        return jsonify({"claims": g.jwt_claims})

    return app.test_client()


def test_flask_hook_passes_claims_and_uses_the_public_url_as_audience(flask_client, ec_key):
    payload = claims()
    response = flask_client.post(
        "/cds-services/ivig-order-sign?debug=1",
        base_url="https://cds.example.org",
        headers={"Authorization": bearer(sign(ec_key, payload))},
        json={},
    )
    assert response.status_code == 200
    assert response.get_json() == {"claims": payload}


def test_flask_hook_answers_401_without_detail_and_never_logs_the_token(flask_client, ec_key, caplog):
    token = sign(ec_key, claims(aud="https://cds.example.org/cds-services/other"))
    with caplog.at_level(logging.DEBUG):
        response = flask_client.post(
            "/cds-services/ivig-order-sign", base_url="https://cds.example.org", headers={"Authorization": bearer(token)}, json={}
        )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.get_json() == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login", "diagnostics": "unauthorized"}],
    }
    assert "aud" in caplog.text  # the reason is logged...
    for part in token.split("."):
        assert part not in caplog.text  # ...the token is not


def test_flask_hook_lets_cors_preflight_through(flask_client):
    response = flask_client.options("/cds-services/ivig-order-sign", base_url="https://cds.example.org")
    assert response.status_code == 200
    assert "POST" in response.headers["Allow"]


def test_flask_hook_rejects_a_missing_header(flask_client):
    response = flask_client.post("/cds-services/ivig-order-sign", base_url="https://cds.example.org", json={})
    assert response.status_code == 401
    assert response.get_json()["issue"][0]["diagnostics"] == "unauthorized"


def test_flask_hook_never_takes_the_audience_from_host_or_forwarded_headers(flask_client, ec_key):
    """A token minted for another deployment stays refused whatever Host and X-Forwarded-* the caller sends."""
    elsewhere = "https://cds.other-hospital.example/cds-services/ivig-order-sign"
    response = flask_client.post(
        "/cds-services/ivig-order-sign", base_url="http://cds.other-hospital.example", json={},
        headers={"Authorization": bearer(sign(ec_key, claims(aud=elsewhere))), "Host": "cds.other-hospital.example",
                 "X-Forwarded-Proto": "https", "X-Forwarded-Host": "cds.other-hospital.example"})
    assert response.status_code == 401
    ours = flask_client.post("/cds-services/ivig-order-sign", base_url="http://10.0.0.7:8080", json={},
                             headers={"Authorization": bearer(sign(ec_key, claims()))})
    assert ours.status_code == 200  # the public URL, not the address the request came to


def test_production_without_a_public_url_refuses_tokens_with_the_reason(jwks, clock, ec_key):
    app = Flask(__name__)
    app.register_error_handler(AuthError, error_response)  # as the app does (http_policy)
    app.before_request(require_jwt(JwtVerifier(settings(jwks), fetch_jwks=Fetcher(), now=clock), None))
    app.post("/cds-services/ivig-order-sign")(lambda: jsonify({}))
    response = app.test_client().post("/cds-services/ivig-order-sign", base_url="https://cds.example.org", json={},
                                      headers={"Authorization": bearer(sign(ec_key, claims()))})
    assert response.status_code == 503
    assert "IVIG_CDS_PUBLIC_URL" in response.get_json()["issue"][0]["diagnostics"]


def test_development_without_a_public_url_uses_the_url_called(jwks, clock, ec_key):
    """So that the CDS Hooks Sandbox works on a workstation with nothing configured."""
    app = Flask(__name__)
    app.register_error_handler(AuthError, error_response)  # as the app does (http_policy)
    app.before_request(require_jwt(JwtVerifier(settings(jwks, required=False), fetch_jwks=Fetcher(), now=clock), None))
    app.post("/cds-services/ivig-order-sign")(lambda: jsonify({}))
    response = app.test_client().post("/cds-services/ivig-order-sign", base_url="https://cds.example.org", json={},
                                      headers={"Authorization": bearer(sign(ec_key, claims()))})
    assert response.status_code == 200
