"""Verification of the JWT a CDS Client sends with every call (CDS Hooks 2.0 "Trusting CDS Clients").

A request carries ``Authorization: Bearer <JWT>``, signed with the client's private key. We accept it only
when all of these hold, and raise :class:`Unauthorized` (with an internal reason, for the log) otherwise:

* header: ``alg`` is ES384 or RS384 (never ``none``, never HMAC, nothing else), checked *before* any
  signature work; ``typ``, when present, is ``JWT`` (RFC 7519 5.1: compared without case, ``application/`` may
  prefix it); ``kid`` is present; no ``crit`` / ``b64`` extensions;
* key: the configured JWK Set when it holds the ``kid``, else the JWK Set at the ``jku`` header URL, and only
  when that URL is on the allowlist (no other URL is ever fetched; redirects are not followed). Fetched sets
  are cached per URL; an unknown ``kid`` triggers one refetch (key rotation), at most once per
  ``jwks_refetch_min_seconds`` per URL so that made-up kids cannot make us hammer the client's server.
  The key must suit the algorithm (EC P-384 for ES384, RSA >= 2048 bits for RS384);
* signature verifies;
* claims: ``iss`` on the allowlist; ``aud`` is the URL called (string, or a list containing it), read as the
  configured public URL of the service plus the path, never from the Host or X-Forwarded-* headers, which the
  caller chooses (see :func:`audience_of`);
  ``exp``, ``iat`` and ``jti`` present; ``exp`` not passed and ``iat`` (and ``nbf``) not in the future,
  give or take ``leeway_seconds``; ``exp - iat`` at most ``max_lifetime_seconds``;
* ``jti`` not seen before for this ``iss`` while the token is valid (replay.py: a SQLite file shared by the
  workers of one host, or one Redis shared by every host).

The replay store is the one piece of state a client can grow, so it is bounded per issuer: each trusted issuer
may have at most ``replay_quota_per_issuer`` unexpired tokens on record, and one over it gets 429 with
Retry-After (:class:`IssuerOverQuota`) while every other issuer is served as before. The total is therefore at
most the quota times the number of trusted issuers, and no client can fill the store for the others. Entries
go when their token expires; the token lifetime is capped (``max_lifetime_seconds``, 5 minutes by default, the
lifetime of the CDS Hooks Sandbox's tokens) so that they go soon. A store that fails (locked past its timeout,
unreadable) is :class:`ReplayStoreUnavailable`: 503 with Retry-After, never a 500, and the next call reopens it.

The token itself is never logged nor put in an exception message. Only :func:`require_jwt`, at the
bottom, knows about Flask.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeGuard

import requests
from jwt import PyJWK, PyJWS
from jwt.exceptions import PyJWTError

from . import replay
from .errors import ServiceError

if TYPE_CHECKING:
    from flask import Response

log = logging.getLogger(__name__)

#: the only signing algorithms we accept (CDS Hooks 2.0: "Both ES384 and RS384 are RECOMMENDED")
ALGORITHMS = ("ES384", "RS384")

SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"

#: The public JWK Set of the CDS Hooks Sandbox (cds-hooks/sandbox : build/.well-known/jwks.json, copied from
#: shared/reference/cds-hooks/cds-hooks-sandbox/jwks.json). Its private key is published in that repository,
#: so anyone can sign as "the Sandbox": trust it in development only, never in production.
SANDBOX_JWKS: dict[str, Any] = {
    "keys": [
        {
            "kty": "EC",
            "use": "sig",
            "crv": "P-384",
            "kid": "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f",
            "x": "dw_JGR8nB2I6XveNxUOl2qk699ZPLM2nYI5STSdiEl9avAkrm3CkfYMbrrjr8laB",
            "y": "Sm3mLE-n1zYNla_aiE3cb3nZsL51RbC7ysw3q8aJLxGm-hx79RPMYpITDjp7kgzy",
            "alg": "ES384",
        }
    ]
}

_MAX_TOKEN_CHARS = 16_384
_MAX_JTI_CHARS = 255
_MAX_JWKS_BYTES = 256 * 1024
_MAX_JWKS_KEYS = 100
_MIN_RSA_BITS = 2048
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: JWK members that describe a public key; anything else (notably private "d", "p", "q", ...) is dropped
_PUBLIC_JWK_MEMBERS = frozenset({"kty", "kid", "use", "key_ops", "alg", "crv", "x", "y", "n", "e"})


@dataclass(frozen=True)
class AuthSettings:
    #: refuse requests without a valid JWT (production); development mode switches it off, though a JWT
    #: that *is* sent is still verified
    required: bool = True
    #: ``iss`` allowlist; empty means no client is trusted (every JWT is refused)
    trusted_issuers: frozenset[str] = frozenset()
    #: a configured JWK Set (``{"keys": [...]}``); its keys are trusted for any allowlisted ``iss``
    jwks: dict | None = field(default=None, hash=False)
    #: exact ``jku`` URLs we may fetch a JWK Set from
    jku_allowlist: frozenset[str] = frozenset()
    #: clock skew allowed on exp / iat / nbf
    leeway_seconds: int = 60
    #: tokens whose exp - iat exceeds this are refused; it also bounds how long a jti is remembered. 300 s is what
    #: the CDS Hooks Sandbox issues (a token is made for each call, so it need not live long); an hour let one
    #: client fill the replay store for an hour
    max_lifetime_seconds: int = 300
    #: how long a JWK Set fetched from a jku URL is used before it is fetched again
    jwks_cache_seconds: int = 300
    #: timeout of one jku fetch (connect and read)
    jwks_timeout_seconds: float = 2.0
    #: at most one fetch of a given jku URL per this many seconds when an unknown kid asks for a refetch
    jwks_refetch_min_seconds: int = 30
    #: most unexpired tokens on record per issuer; an issuer over it gets 429 until its oldest expire (fail closed
    #: for that issuer only). 50,000 is about 120 calls a second sustained with 5-minute tokens
    replay_quota_per_issuer: int = 50_000
    #: where the jti seen are kept: a SQLite file shared by the worker processes of this host (":memory:" = this
    #: process only), or a redis:// / rediss:// URL shared by every host (may hold a password: never shown)
    replay_store: str = field(default_factory=lambda: default_replay_store(), repr=False)
    #: what the Redis store's keys start with (one sorted set per issuer), so that one Redis can serve several things
    replay_key_prefix: str = "ivig-cds:jti:"
    #: how long a call waits for the replay store's lock before it is answered 503
    replay_store_timeout_seconds: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted_issuers", frozenset(self.trusted_issuers))
        object.__setattr__(self, "jku_allowlist", frozenset(self.jku_allowlist))
        if self.jwks is not None and not (isinstance(self.jwks, Mapping) and isinstance(self.jwks.get("keys"), list)):
            raise ValueError("jwks must be a JWK Set: an object with a 'keys' array")
        for name in ("leeway_seconds", "max_lifetime_seconds", "jwks_cache_seconds", "jwks_refetch_min_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if min(self.jwks_timeout_seconds, self.replay_quota_per_issuer, self.max_lifetime_seconds, self.replay_store_timeout_seconds) <= 0:
            raise ValueError("jwks_timeout_seconds, max_lifetime_seconds, replay_quota_per_issuer and "
                             "replay_store_timeout_seconds must be positive")

    @classmethod
    def development(cls) -> AuthSettings:
        """Auth optional; trusts the public CDS Hooks Sandbox (whose private key is public: never in production)."""
        return cls(
            required=False,
            trusted_issuers=frozenset({SANDBOX_ISSUER}),
            jwks=copy.deepcopy(SANDBOX_JWKS),
            jku_allowlist=frozenset({SANDBOX_JKU}),
        )


def default_replay_store() -> str:
    """A file every worker process on the host can open: in shared memory (/dev/shm) where the OS has it, so a
    hook call does no disk I/O for it; else in the temporary directory."""
    folder = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return str(folder / f"ivig-cds-jti-{os.getuid()}.sqlite3")


#: why a token is refused, in a few words fixed here (a metric's label: never a value the client chose)
REFUSAL_KINDS = ("no_token", "malformed", "algorithm", "key", "signature", "issuer", "audience", "claims", "expired",
                 "lifetime", "replayed", "issuer_over_quota", "replay_store_unavailable", "no_public_url")


class AuthError(ServiceError):
    """A call refused before it is answered. ``reason`` is for the log only; the client gets ``diagnostics``;
    ``kind`` (one of REFUSAL_KINDS) is what the refusal is counted as."""

    status = 401
    issue_code = "login"
    diagnostics = "unauthorized"
    kind = "malformed"

    def __init__(self, reason: str, *, retry_after: int | None = None, kind: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        if kind is not None:
            assert kind in REFUSAL_KINDS, kind
            self.kind = kind


class Unauthorized(AuthError):
    """401: no acceptable JWT. The client learns nothing of why (the log does)."""


class IssuerOverQuota(AuthError):
    """429: this issuer has as many unexpired tokens on record as it may; its oldest expires in ``retry_after``."""

    status = 429
    issue_code = "throttled"
    kind = "issuer_over_quota"
    diagnostics = "too many unexpired tokens from this issuer on record; retry when the oldest have expired"


class ReplayStoreUnavailable(AuthError):
    """503: the replay store cannot be used now, so no token can be checked for replay."""

    status = 503
    issue_code = "transient"
    kind = "replay_store_unavailable"
    diagnostics = "the service cannot check tokens for replay at the moment; retry shortly"


class NoPublicUrl(AuthError):
    """503: production without ``IVIG_CDS_PUBLIC_URL``: no audience to check a token against, so none is accepted."""

    status = 503
    issue_code = "exception"
    kind = "no_public_url"
    diagnostics = ("this service has no public URL configured (IVIG_CDS_PUBLIC_URL), so it cannot check the audience "
                   "of any token; calls are refused until it is set")


def fetch_jwks_over_http(url: str, timeout: float) -> dict:
    """GET a JWK Set; no redirects (they could lead off the allowlist), size-capped, JSON object only."""
    with requests.get(url, timeout=timeout, allow_redirects=False, stream=True, headers={"Accept": "application/json"}) as response:
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        body = response.raw.read(_MAX_JWKS_BYTES + 1, decode_content=True)
    if len(body) > _MAX_JWKS_BYTES:
        raise ValueError("JWK Set too large")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise TypeError("JWK Set is not a JSON object")
    return data


def _index_jwks(jwks: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """kid -> the public JWKs carrying it (members other than public-key ones dropped; keys without kid skipped)."""
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        raise TypeError("JWK Set has no 'keys' array")
    index: dict[str, list[dict[str, Any]]] = {}
    for jwk in keys[:_MAX_JWKS_KEYS]:
        if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and jwk["kid"]:
            index.setdefault(jwk["kid"], []).append({k: v for k, v in jwk.items() if k in _PUBLIC_JWK_MEMBERS})
    return index


def _key_for(candidates: list[dict[str, Any]], alg: str) -> PyJWK:
    """The first JWK among ``candidates`` usable to verify ``alg``; Unauthorized if none is."""
    for jwk in candidates:
        if jwk.get("alg", alg) != alg or jwk.get("use", "sig") != "sig":
            continue
        key_ops = jwk.get("key_ops")
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            continue
        if alg == "ES384" and not (jwk.get("kty") == "EC" and jwk.get("crv") == "P-384"):
            continue
        if alg == "RS384" and jwk.get("kty") != "RSA":
            continue
        try:
            key = PyJWK(jwk, algorithm=alg)
        except (PyJWTError, ValueError, TypeError):
            continue
        if alg == "RS384" and getattr(key.key, "key_size", 0) < _MIN_RSA_BITS:
            continue
        return key
    raise Unauthorized(f"no key with this kid is usable for {alg}", kind="key")


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _short(value: Any, limit: int = 80) -> str:
    """A bounded, escaped rendering of an attacker-supplied value for the log."""
    text = value if isinstance(value, str) else str(value)
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


class _JwksCache:
    """JWK Sets fetched from allowlisted jku URLs, per URL, thread-safe (one fetch at a time per URL)."""

    def __init__(self, settings: AuthSettings, fetch: Callable[[str, float], dict], now: Callable[[], float]) -> None:
        self._settings = settings
        self._fetch = fetch
        self._now = now
        self._lock = threading.Lock()
        self._url_locks: dict[str, threading.Lock] = {}
        self._sets: dict[str, tuple[float, dict[str, list[dict[str, Any]]]]] = {}  # url -> (fetched_at, index)
        self._last_attempt: dict[str, float] = {}

    def candidates(self, url: str, kid: str) -> list[dict[str, Any]]:
        with self._lock:
            url_lock = self._url_locks.setdefault(url, threading.Lock())
        with url_lock:
            now = self._now()
            cached = self._sets.get(url)
            fresh = cached is not None and now - cached[0] < self._settings.jwks_cache_seconds
            if cached is not None and fresh and kid in cached[1]:
                return cached[1][kid]
            # Not cached, expired, or an unknown kid (perhaps a rotated key): one fetch, rate-limited per URL
            # so that made-up kids (or a failing server) cannot turn our traffic into a flood of fetches.
            last = self._last_attempt.get(url)
            if last is not None and now - last < self._settings.jwks_refetch_min_seconds:
                raise Unauthorized(f"unknown kid {_short(kid)} at jku {url} (refetch throttled)", kind="key")
            self._last_attempt[url] = now
            try:
                index = _index_jwks(self._fetch(url, self._settings.jwks_timeout_seconds))
            except Exception as exc:  # noqa: BLE001 - any failure to get a usable set is a refusal, not a 500
                raise Unauthorized(f"could not fetch JWK Set from jku {url}: {type(exc).__name__}", kind="key") from None
            self._sets[url] = (now, index)
            if kid not in index:
                raise Unauthorized(f"unknown kid {_short(kid)} at jku {url}", kind="key")
            return index[kid]


#: seconds a client is told to wait when the replay store fails
REPLAY_STORE_RETRY_AFTER = 5

class JwtVerifier:
    """Verifies the CDS Client's JWT against :class:`AuthSettings`. One instance per app (it holds the caches)."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        fetch_jwks: Callable[[str, float], dict] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._now = now
        self._configured = _index_jwks(settings.jwks) if settings.jwks is not None else {}
        self._jwks_cache = _JwksCache(settings, fetch_jwks or fetch_jwks_over_http, now)
        try:
            self._replay = replay.open_replay_store(settings.replay_store, quota=settings.replay_quota_per_issuer,
                                                    timeout=settings.replay_store_timeout_seconds, now=now,
                                                    key_prefix=settings.replay_key_prefix)
        except replay.Unavailable as exc:  # stops start-up
            raise ReplayStoreUnavailable(str(exc)) from None
        self._jws = PyJWS(algorithms=list(ALGORITHMS))

    def verify(self, authorization_header: str | None, audience: str) -> dict | None:
        """Return the claims, or None when auth is not required and no header was sent. Raise Unauthorized otherwise."""
        if authorization_header is None:
            if self.settings.required:
                raise Unauthorized("no Authorization header", kind="no_token")
            return None
        token = self._bearer_token(authorization_header)
        header = self._checked_header(token)
        alg, kid = header["alg"], header["kid"]
        key = _key_for(self._candidates(kid, header.get("jku")), alg)
        try:
            payload = self._jws.decode_complete(token, key=key, algorithms=[alg])["payload"]
        except PyJWTError as exc:
            raise Unauthorized(f"signature rejected ({type(exc).__name__}) for kid {_short(kid)}", kind="signature") from None
        try:
            claims = json.loads(payload, parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError):
            raise Unauthorized("payload is not JSON") from None
        if not isinstance(claims, dict):
            raise Unauthorized("payload is not a JSON object")
        self._check_claims(claims, audience)
        self._remember(claims["iss"], claims["jti"], claims["exp"] + self.settings.leeway_seconds)
        return claims

    def _remember(self, iss: str, jti: str, expires: float) -> None:
        """Record the token's jti, or refuse the call: a replay (401), its issuer over quota (429), or the store
        failing (503: no token can be checked, so none is accepted)."""
        try:
            self._replay.remember((iss, jti), expires)
        except replay.Replayed:
            raise Unauthorized(f"jti {_short(jti)} from iss {_short(iss, 200)} replayed", kind="replayed") from None
        except replay.OverQuota as exc:
            raise IssuerOverQuota(f"iss {_short(iss, 200)} has {exc.count} unexpired tokens on record",
                                  retry_after=exc.retry_after) from None
        except replay.Unavailable as exc:
            log.error("%s", exc)
            raise ReplayStoreUnavailable(str(exc), retry_after=REPLAY_STORE_RETRY_AFTER) from None

    def replay_store_ready(self) -> None:
        """ReplayStoreUnavailable unless the replay store answers now (the readiness check)."""
        try:
            self._replay.ping()
        except replay.Unavailable as exc:
            raise ReplayStoreUnavailable(str(exc), retry_after=REPLAY_STORE_RETRY_AFTER) from None

    @staticmethod
    def _bearer_token(authorization_header: str) -> str:
        parts = authorization_header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise Unauthorized("Authorization is not 'Bearer <token>'")
        token = parts[1]
        if len(token) > _MAX_TOKEN_CHARS or not _COMPACT_JWS.fullmatch(token):
            raise Unauthorized("bearer token is not a compact JWS")
        return token

    def _checked_header(self, token: str) -> dict[str, Any]:
        try:
            header = self._jws.get_unverified_header(token)
        except (PyJWTError, ValueError):
            raise Unauthorized("unreadable JWT header") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            # 'none', HS*, and everything else
            raise Unauthorized(f"alg {_short(alg, 20)} not allowed", kind="algorithm")
        typ = header.get("typ", "JWT")
        if not isinstance(typ, str) or typ.lower().removeprefix("application/") != "jwt":
            raise Unauthorized(f"typ {_short(typ, 40)} is not JWT")
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise Unauthorized("no kid")
        if "jku" in header and not isinstance(header["jku"], str):
            raise Unauthorized("jku is not a string")
        if "crit" in header or "b64" in header:
            raise Unauthorized("JWS extensions (crit/b64) not supported")
        return header

    def _candidates(self, kid: str, jku: str | None) -> list[dict[str, Any]]:
        if kid in self._configured:
            return self._configured[kid]
        if jku is None:
            raise Unauthorized(f"unknown kid {_short(kid)} and no jku", kind="key")
        if jku not in self.settings.jku_allowlist:
            raise Unauthorized(f"jku {_short(jku, 200)} not on the allowlist", kind="key")
        return self._jwks_cache.candidates(jku, kid)

    def _check_claims(self, claims: dict[str, Any], audience: str) -> None:
        s = self.settings
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss not in s.trusted_issuers:
            raise Unauthorized(f"iss {_short(iss, 200)} not trusted", kind="issuer")
        aud = claims.get("aud")
        if not (aud == audience or (isinstance(aud, list) and audience in aud)):
            raise Unauthorized(f"aud does not name {audience}", kind="audience")
        exp, iat, jti = claims.get("exp"), claims.get("iat"), claims.get("jti")
        if not _is_number(exp) or not _is_number(iat):
            raise Unauthorized("exp and iat must be present, numeric and finite", kind="claims")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_CHARS:
            raise Unauthorized("jti must be present: a non-empty string", kind="claims")
        now = self._now()
        if exp <= now - s.leeway_seconds:
            raise Unauthorized("token expired", kind="expired")
        if iat > now + s.leeway_seconds:
            raise Unauthorized("iat in the future", kind="expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or nbf > now + s.leeway_seconds):
            raise Unauthorized("token not yet valid (nbf)", kind="expired")
        if exp <= iat or exp - iat > s.max_lifetime_seconds:
            raise Unauthorized(f"lifetime exp - iat = {exp - iat:.0f}s outside (0, {s.max_lifetime_seconds}]", kind="lifetime")


# --- Flask -------------------------------------------------------------------------------------------------


def audience_of(public_url: str | None, path: str, request_url: str, *, required: bool) -> str:
    """The URL a token for this call must name in ``aud``: the configured public URL plus the path.

    Never a URL built from the request's Host or X-Forwarded-* headers: the caller chooses those, and a token
    minted for another deployment would pass. Without a public URL, production (``required``) accepts no token
    (NoPublicUrl); development falls back to the URL of the request, so the Sandbox works on a workstation
    unconfigured (any token may be forged there anyway: the Sandbox's private key is public).
    """
    if public_url is not None:
        return public_url + path
    if required:
        raise NoPublicUrl("IVIG_CDS_PUBLIC_URL is not set")
    return request_url


def require_jwt(verifier: JwtVerifier, public_url: str | None = None,
                on_refusal: Callable[[AuthError], None] | None = None) -> Callable[[], Response | None]:
    """A ``before_request`` hook: verify every request but CORS preflight; an OperationOutcome on failure
    (401; 429 for an issuer over its quota; 503 when the replay store fails or production has no public URL).

    The audience is ``public_url`` plus the request path (see :func:`audience_of`). Claims (or None) go to
    ``flask.g.jwt_claims``. ``on_refusal`` is told of every refusal (the metrics count them by kind).
    """
    from flask import g, request

    def check_jwt() -> Response | None:
        if request.method == "OPTIONS":  # CORS preflight carries no credentials
            g.jwt_claims = None
            return None
        header = request.headers.get("Authorization")
        try:
            audience = request.base_url if header is None else audience_of(
                public_url, request.path, request.base_url, required=verifier.settings.required)
            g.jwt_claims = verifier.verify(header, audience)
        except AuthError as exc:
            log.warning("%d for %s %s: %s", exc.status, request.method, request.path, exc.reason)
            if on_refusal is not None:
                on_refusal(exc)
            raise  # http_policy answers it (its status, WWW-Authenticate or Retry-After)
        return None

    return check_jwt
