"""All settings in one place, read from the environment once, when the app is created.

Production is the default. `IVIG_CDS_MODE=development` is for trying the service with the CDS Hooks
Sandbox on a workstation: a JWT becomes optional (one that is sent is still verified), the Sandbox's
public JWKS is trusted (its private key is public, so never in production), and any FHIR server may
be called over http or https unless an allowlist is given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

from .auth import AuthSettings
from .regimen import DosePolicy

PREFIX = "IVIG_CDS_"
MODES = ("production", "development")
#: the databases the card and feedback store is tested against
STORE_SCHEMES = ("sqlite", "postgresql")
#: a shorter reviewer token could be guessed by trying
MIN_REVIEWER_TOKEN = 16


class ConfigurationError(ValueError):
    """A setting we refuse to start with."""


def default_store_url() -> str:
    """A SQLite file that outlives restarts and reboots (so not the temp dir nor /dev/shm): the XDG state
    directory, $XDG_STATE_HOME or ~/.local/state, under ivig-cds/. Created on first start."""
    state = os.environ.get("XDG_STATE_HOME", "").strip() or str(Path.home() / ".local" / "state")
    return f"sqlite:///{Path(state) / 'ivig-cds' / 'store.sqlite3'}"


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
    fhir_max_parallel: int = 6
    #: most pages read for one search; a longer result is not used (412), since part of a record is not the record
    fhir_max_pages: int = 20
    #: largest request body accepted (413 above it)
    max_body_bytes: int = 1_000_000
    #: dose tolerance and how old a body weight may be to dose by (see regimen.DosePolicy)
    dose_policy: DosePolicy = field(default_factory=DosePolicy)
    #: Access-Control-Allow-Origin; the CDS Hooks Sandbox calls from a browser
    cors_allow_origin: str = "*"
    #: SQLAlchemy URL of the card and feedback store (sqlite:///FILE or postgresql://...); may hold a password
    store_url: str = field(default_factory=default_store_url, repr=False)
    #: cards (and their feedback) shown more than this many days ago are deleted at start-up; 0 keeps everything
    retention_days: int = 730
    #: the credential that opens GET /report; None = no report served (404)
    reviewer_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigurationError(f"{PREFIX}MODE must be one of {MODES}, not {self.mode!r}")
        policy = self.dose_policy
        if not 0 <= policy.tolerance < 1 or min(policy.weight_max_age_days_adult, policy.weight_max_age_days_child) < 0:
            raise ConfigurationError(f"{PREFIX}DOSE_TOLERANCE must be in [0, 1) and {PREFIX}WEIGHT_MAX_AGE_DAYS_* not negative")
        if self.retention_days < 0:
            raise ConfigurationError(f"{PREFIX}RETENTION_DAYS must be 0 (keep everything) or a number of days")
        if self.reviewer_token is not None and len(self.reviewer_token) < MIN_REVIEWER_TOKEN:
            raise ConfigurationError(f"{PREFIX}REVIEWER_TOKEN must be at least {MIN_REVIEWER_TOKEN} characters")
        if urlsplit(self.store_url).scheme.partition("+")[0] not in STORE_SCHEMES:
            raise ConfigurationError(f"{PREFIX}STORE_URL must start with one of {', '.join(s + '://' for s in STORE_SCHEMES)}")
        for base in self.fhir_servers:
            scheme = urlsplit(base).scheme
            if scheme not in ("https", "http") or (scheme == "http" and self.mode == "production"):
                raise ConfigurationError(f"{PREFIX}FHIR_SERVERS: {base!r} must be an https URL in production")

    def may_call(self, fhir_server: str) -> bool:
        """Is this fhirServer one we may send a request (and the client's token) to?"""
        if not self.fhir_servers:
            return self.mode == "development" and urlsplit(fhir_server).scheme in ("http", "https")
        if self.mode == "production" and urlsplit(fhir_server).scheme != "https":
            return False
        return any(fhir_server == base.rstrip("/") or fhir_server.startswith(base.rstrip("/") + "/") for base in self.fhir_servers)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        def get(name: str, default: str = "") -> str:
            return environ.get(PREFIX + name, default).strip()

        def listed(name: str) -> tuple[str, ...]:
            return tuple(item.strip() for item in get(name).split(",") if item.strip())

        mode = get("MODE", "production")
        auth = AuthSettings.development() if mode == "development" else AuthSettings()
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
            )
            return cls(
                knowledge_root=Path(get("KNOWLEDGE_ROOT") or _default_knowledge_root()),
                mode=mode,
                auth=auth,
                fhir_servers=listed("FHIR_SERVERS"),
                fhir_timeout=float(get("FHIR_TIMEOUT", "3.0")),
                fhir_max_parallel=int(get("FHIR_MAX_PARALLEL", "6")),
                fhir_max_pages=int(get("FHIR_MAX_PAGES", "20")),
                max_body_bytes=int(get("MAX_BODY_BYTES", "1000000")),
                dose_policy=DosePolicy(
                    tolerance=Decimal(get("DOSE_TOLERANCE", str(DosePolicy.tolerance))),
                    weight_max_age_days_adult=int(get("WEIGHT_MAX_AGE_DAYS_ADULT", str(DosePolicy.weight_max_age_days_adult))),
                    weight_max_age_days_child=int(get("WEIGHT_MAX_AGE_DAYS_CHILD", str(DosePolicy.weight_max_age_days_child))),
                ),
                cors_allow_origin=get("CORS_ALLOW_ORIGIN", "*"),
                store_url=get("STORE_URL") or default_store_url(),
                retention_days=int(get("RETENTION_DAYS", str(cls.retention_days))),
                reviewer_token=get("REVIEWER_TOKEN") or None,
            )
        except (OSError, ValueError, InvalidOperation) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"invalid {PREFIX}* setting: {exc}") from exc
