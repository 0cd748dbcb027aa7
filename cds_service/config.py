"""All settings in one place, read from the environment once, when the app is created.

Production is the default. `IVIG_CDS_MODE=development` is for trying the service with the CDS Hooks
Sandbox on a workstation: a JWT becomes optional (one that is sent is still verified), the Sandbox's
public JWKS is trusted (its private key is public, so never in production), and any FHIR server may
be called over http or https unless an allowlist is given.

`IVIG_CDS_MODE=trial` (or `ivig-cds serve --trial`) is for a newcomer's first minutes on their own machine: a JWT
becomes optional and nobody's JWT is trusted (one that is sent is refused), no FHIR server is called unless
allowlisted (the examples carry their data as prefetch), and the service refuses to listen on anything but loopback.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

from .auth import AuthSettings
from .fhir_client import DEFAULT_MAX_BYTES, DEFAULT_MAX_PAGES, DEFAULT_MAX_PARALLEL
from .forwarded import IPNetwork
from .regimen import DosePolicy

PREFIX = "IVIG_CDS_"
MODES = ("production", "development", "trial")
#: the addresses trial mode may listen on (besides any other loopback address)
LOOPBACK_NAMES = ("localhost",)
#: the databases the card and feedback store is tested against
STORE_SCHEMES = ("sqlite", "postgresql")
#: a shorter reviewer (or metrics) token could be guessed by trying
MIN_REVIEWER_TOKEN = 16


class ConfigurationError(ValueError):
    """A setting we refuse to start with."""


@dataclass(frozen=True)
class ServerSettings:
    """How `ivig-cds serve` runs gunicorn (see server.py for why each of these bounds matters)."""

    #: threads per worker process; each answers one complete request at a time
    threads: int = 8
    #: open connections per worker process, idle and slow ones included; more wait in the listen backlog
    max_connections: int = 1000
    #: how long a connection may stay open without sending a request (new or kept alive)
    keepalive_seconds: int = 5
    #: from the first byte of a request to the last byte of its body; a slower client is disconnected
    request_read_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.threads < 1 or self.max_connections <= self.threads or self.keepalive_seconds < 1 or self.request_read_seconds <= 0:
            raise ConfigurationError(f"{PREFIX}THREADS must be at least 1 and below {PREFIX}MAX_CONNECTIONS; "
                                     f"{PREFIX}KEEPALIVE_SECONDS at least 1; {PREFIX}REQUEST_READ_SECONDS positive")


@dataclass(frozen=True)
class RequestLimits:
    """What one request may hold, so that answering it stays bounded and linear in its size."""

    #: most resources in context.draftOrders (413 above it)
    max_draft_orders: int = 100
    #: most entries over all the Bundles of one request (prefetch, $apply data; 413 above it)
    max_bundle_entries: int = 10_000
    #: deepest nesting of JSON arrays and objects in a request body (400 above it), checked before parsing
    max_json_depth: int = 64

    def __post_init__(self) -> None:
        if min(self.max_draft_orders, self.max_bundle_entries, self.max_json_depth) < 1:
            raise ConfigurationError(f"{PREFIX}MAX_DRAFT_ORDERS, {PREFIX}MAX_BUNDLE_ENTRIES and {PREFIX}MAX_JSON_DEPTH must be positive")
def default_store_url() -> str:
    """A SQLite file that outlives restarts and reboots (so not the temp dir nor /dev/shm): the XDG state
    directory, $XDG_STATE_HOME or ~/.local/state, under ivig-cds/. Created on first start."""
    state = os.environ.get("XDG_STATE_HOME", "").strip() or str(Path.home() / ".local" / "state")
    return f"sqlite:///{Path(state) / 'ivig-cds' / 'store.sqlite3'}"


def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """IVIG_CDS_TRUSTED_PROXIES: addresses or CIDR blocks (10.0.0.5, 10.0.0.0/24, fd00::/8)."""
    try:
        return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)
    except ValueError as exc:
        raise ConfigurationError(f"{PREFIX}TRUSTED_PROXIES: {exc} (give addresses or CIDR blocks, comma-separated)") from None


def _flag(value: str, name: str, default: bool) -> bool:
    """A yes/no setting: true/false, yes/no, 1/0 (any case); empty = the default."""
    if not value:
        return default
    if value.lower() in ("true", "yes", "1"):
        return True
    if value.lower() in ("false", "no", "0"):
        return False
    raise ConfigurationError(f"{PREFIX}{name} must be true or false, not {value[:40]!r}")


def _default_knowledge_root() -> Path:
    """The folder holding plandefinitions/ and valuesets/: the working directory, else the repository."""
    cwd = Path.cwd()
    if (cwd / "plandefinitions").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    knowledge_root: Path
    #: production | development (see the module docstring)
    mode: str = "production"
    #: how CDS clients' JWTs are checked (issuer and jku allowlists, JWKS, skew, lifetime)
    auth: AuthSettings = field(default_factory=AuthSettings)
    #: FHIR base URLs (prefixes) we may call with a client's token; empty = none in production, any in development
    fhir_servers: tuple[str, ...] = ()
    #: seconds for each query to the EHR's FHIR server; queries run in parallel, so also the outbound budget of a call
    fhir_timeout: float = 3.0
    #: most queries one hook call runs at once against the EHR's FHIR server
    fhir_max_parallel: int = DEFAULT_MAX_PARALLEL
    #: most pages read for one search; a longer result is not used (412), since part of a record is not the record
    fhir_max_pages: int = DEFAULT_MAX_PAGES
    #: most bytes read of one FHIR answer (one page); a larger one is not read further and not used (412)
    fhir_max_bytes: int = DEFAULT_MAX_BYTES
    #: largest request body accepted (413 above it)
    max_body_bytes: int = 1_000_000
    #: dose tolerance and how old a body weight may be to dose by (see regimen.DosePolicy)
    dose_policy: DosePolicy = field(default_factory=DosePolicy)
    #: Access-Control-Allow-Origin; the CDS Hooks Sandbox calls from a browser
    cors_allow_origin: str = "*"
    #: the service's external base URL (as the EHR calls it, e.g. https://cds.hospital.example); a JWT's aud must be
    #: this plus the endpoint path. None: production refuses every JWT (see auth.audience_of); development uses the
    #: URL of the request
    public_url: str | None = None
    #: number of draft orders, Bundle entries and JSON depth a request may have
    limits: RequestLimits = field(default_factory=RequestLimits)
    #: how `ivig-cds serve` runs gunicorn
    server: ServerSettings = field(default_factory=ServerSettings)
    #: SQLAlchemy URL of the card and feedback store (sqlite:///FILE or postgresql://...); may hold a password
    store_url: str = field(default_factory=default_store_url, repr=False)
    #: cards (and their feedback) shown more than this many days ago are deleted at start-up; 0 keeps everything
    retention_days: int = 730
    #: GET /cds-services needs a CDS client JWT too; off by default: discovery holds no patient data and EHRs read it
    #: when they register a service
    discovery_requires_jwt: bool = False
    #: the credential that opens GET /report; None = no report served (404)
    reviewer_token: str | None = field(default=None, repr=False)
    #: addresses of the reverse proxies in front, whose X-Forwarded-For and X-Request-ID are believed (for the
    #: client address and request id in the logs only; see forwarded.py); empty = nobody's
    trusted_proxies: tuple[IPNetwork, ...] = ()
    #: the credential that opens GET /metrics (Prometheus's bearer token); None = no metrics served (404)
    metrics_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigurationError(f"{PREFIX}MODE must be one of {MODES}, not {self.mode!r}")
        policy = self.dose_policy
        if not 0 <= policy.tolerance < 1 or min(policy.weight_max_age_days_adult, policy.weight_max_age_days_child) < 0:
            raise ConfigurationError(f"{PREFIX}DOSE_TOLERANCE must be in [0, 1) and {PREFIX}WEIGHT_MAX_AGE_DAYS_* not negative")
        if self.fhir_max_bytes < 1 or self.fhir_max_parallel < 1 or self.fhir_max_pages < 1 or self.fhir_timeout <= 0:
            raise ConfigurationError(f"{PREFIX}FHIR_MAX_BYTES, _MAX_PARALLEL, _MAX_PAGES and _TIMEOUT must be positive")
        if self.retention_days < 0:
            raise ConfigurationError(f"{PREFIX}RETENTION_DAYS must be 0 (keep everything) or a number of days")
        if self.reviewer_token is not None and len(self.reviewer_token) < MIN_REVIEWER_TOKEN:
            raise ConfigurationError(f"{PREFIX}REVIEWER_TOKEN must be at least {MIN_REVIEWER_TOKEN} characters")
        if self.metrics_token is not None and len(self.metrics_token) < MIN_REVIEWER_TOKEN:
            raise ConfigurationError(f"{PREFIX}METRICS_TOKEN must be at least {MIN_REVIEWER_TOKEN} characters")
        replay_store = urlsplit(self.auth.replay_store)
        if replay_store.scheme in ("redis", "rediss") and not replay_store.hostname:
            raise ConfigurationError(f"{PREFIX}REPLAY_STORE: a Redis URL needs a host (redis://host:6379/0)")
        if urlsplit(self.store_url).scheme.partition("+")[0] not in STORE_SCHEMES:
            raise ConfigurationError(f"{PREFIX}STORE_URL must start with one of {', '.join(s + '://' for s in STORE_SCHEMES)}")
        for base in self.fhir_servers:
            scheme = urlsplit(base).scheme
            if scheme not in ("https", "http") or (scheme == "http" and self.mode == "production"):
                raise ConfigurationError(f"{PREFIX}FHIR_SERVERS: {base!r} must be an https URL in production")
        for jku in self.auth.jku_allowlist:
            if urlsplit(jku).scheme != "https" and self.mode == "production":
                raise ConfigurationError(f"{PREFIX}JKU_ALLOWLIST: {jku!r} must be an https URL in production")
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
                raise ConfigurationError(f"{PREFIX}PUBLIC_URL: {self.public_url!r} must be an absolute URL with no query")
            if parts.scheme == "http" and self.mode == "production":
                raise ConfigurationError(f"{PREFIX}PUBLIC_URL: {self.public_url!r} must be an https URL in production")
            object.__setattr__(self, "public_url", self.public_url.rstrip("/"))

    def check_listen_address(self, host: str) -> None:
        """Trial mode answers anyone without a JWT, so it listens on loopback only: reachable from this machine alone."""
        if self.mode != "trial" or host.lower() in LOOPBACK_NAMES:
            return
        try:
            loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigurationError(f"trial mode listens on loopback only (127.0.0.1, ::1 or localhost), not {host!r}: "
                                     f"it answers without a JWT; set up production mode to serve other machines")

    def may_call(self, fhir_server: str) -> bool:
        """Is this fhirServer one we may send a request (and the client's token) to?"""
        if not self.fhir_servers:
            return self.mode == "development" and urlsplit(fhir_server).scheme in ("http", "https")
        if self.mode == "production" and urlsplit(fhir_server).scheme != "https":
            return False
        return any(fhir_server == base.rstrip("/") or fhir_server.startswith(base.rstrip("/") + "/") for base in self.fhir_servers)

    @property
    def public_addresses_only(self) -> bool:
        """Development mode without an allowlist: the client's token goes to public addresses only, never to
        loopback, private or link-local ones (list such a server in IVIG_CDS_FHIR_SERVERS to call it)."""
        return not self.fhir_servers

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        def get(name: str, default: str = "") -> str:
            return environ.get(PREFIX + name, default).strip()

        def listed(name: str) -> tuple[str, ...]:
            return tuple(item.strip() for item in get(name).split(",") if item.strip())

        mode = get("MODE", cls.mode)
        auth = AuthSettings.development() if mode == "development" else AuthSettings(required=mode != "trial")
        jwks_file = get("JWKS_FILE")
        try:
            jwks = json.loads(Path(jwks_file).read_text()) if jwks_file else auth.jwks
            auth = AuthSettings(
                required=auth.required,
                trusted_issuers=auth.trusted_issuers | set(listed("TRUSTED_ISSUERS")),
                jwks=jwks,
                jku_allowlist=auth.jku_allowlist | set(listed("JKU_ALLOWLIST")),
                leeway_seconds=int(get("JWT_LEEWAY_SECONDS", str(auth.leeway_seconds))),
                max_lifetime_seconds=int(get("JWT_MAX_LIFETIME_SECONDS", str(auth.max_lifetime_seconds))),
                replay_store=get("REPLAY_STORE") or auth.replay_store,
                replay_quota_per_issuer=int(get("REPLAY_QUOTA_PER_ISSUER", str(auth.replay_quota_per_issuer))),
                replay_key_prefix=get("REPLAY_KEY_PREFIX") or auth.replay_key_prefix,
            )
            return cls(
                knowledge_root=Path(get("KNOWLEDGE_ROOT") or _default_knowledge_root()),
                mode=mode,
                auth=auth,
                fhir_servers=listed("FHIR_SERVERS"),
                fhir_timeout=float(get("FHIR_TIMEOUT", str(cls.fhir_timeout))),
                fhir_max_parallel=int(get("FHIR_MAX_PARALLEL", str(cls.fhir_max_parallel))),
                fhir_max_pages=int(get("FHIR_MAX_PAGES", str(cls.fhir_max_pages))),
                fhir_max_bytes=int(get("FHIR_MAX_BYTES", str(cls.fhir_max_bytes))),
                max_body_bytes=int(get("MAX_BODY_BYTES", str(cls.max_body_bytes))),
                dose_policy=DosePolicy(
                    tolerance=Decimal(get("DOSE_TOLERANCE", str(DosePolicy.tolerance))),
                    weight_max_age_days_adult=int(get("WEIGHT_MAX_AGE_DAYS_ADULT", str(DosePolicy.weight_max_age_days_adult))),
                    weight_max_age_days_child=int(get("WEIGHT_MAX_AGE_DAYS_CHILD", str(DosePolicy.weight_max_age_days_child))),
                ),
                cors_allow_origin=get("CORS_ALLOW_ORIGIN", cls.cors_allow_origin),
                public_url=get("PUBLIC_URL") or None,
                limits=RequestLimits(
                    max_draft_orders=int(get("MAX_DRAFT_ORDERS", str(RequestLimits.max_draft_orders))),
                    max_bundle_entries=int(get("MAX_BUNDLE_ENTRIES", str(RequestLimits.max_bundle_entries))),
                    max_json_depth=int(get("MAX_JSON_DEPTH", str(RequestLimits.max_json_depth))),
                ),
                server=ServerSettings(
                    threads=int(get("THREADS", str(ServerSettings.threads))),
                    max_connections=int(get("MAX_CONNECTIONS", str(ServerSettings.max_connections))),
                    keepalive_seconds=int(get("KEEPALIVE_SECONDS", str(ServerSettings.keepalive_seconds))),
                    request_read_seconds=float(get("REQUEST_READ_SECONDS", str(ServerSettings.request_read_seconds))),
                ),
                store_url=get("STORE_URL") or default_store_url(),
                retention_days=int(get("RETENTION_DAYS", str(cls.retention_days))),
                discovery_requires_jwt=_flag(get("DISCOVERY_REQUIRES_JWT"), "DISCOVERY_REQUIRES_JWT", cls.discovery_requires_jwt),
                reviewer_token=get("REVIEWER_TOKEN") or None,
                trusted_proxies=_networks(listed("TRUSTED_PROXIES")),
                metrics_token=get("METRICS_TOKEN") or None,
            )
        except (OSError, ValueError, InvalidOperation) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"invalid {PREFIX}* setting: {exc}") from exc
