"""The README's configuration table against config.py: every setting the service reads is documented, nothing else
is, and each default the table states is the one Settings.from_env gives (written once, in code)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from cds_service.config import PREFIX, Settings
from tests.conftest import ROOT

#: how to read each setting's effective default from Settings
DEFAULTS = {
    "MODE": lambda s: s.mode,
    "TRUSTED_ISSUERS": lambda s: s.auth.trusted_issuers,
    "JWKS_FILE": lambda s: s.auth.jwks,
    "PUBLIC_URL": lambda s: s.public_url,
    "JKU_ALLOWLIST": lambda s: s.auth.jku_allowlist,
    "JWT_LEEWAY_SECONDS": lambda s: s.auth.leeway_seconds,
    "JWT_MAX_LIFETIME_SECONDS": lambda s: s.auth.max_lifetime_seconds,
    "REPLAY_KEY_PREFIX": lambda s: s.auth.replay_key_prefix,
    "REPLAY_QUOTA_PER_ISSUER": lambda s: s.auth.replay_quota_per_issuer,
    "FHIR_SERVERS": lambda s: s.fhir_servers,
    "FHIR_TIMEOUT": lambda s: s.fhir_timeout,
    "FHIR_MAX_PARALLEL": lambda s: s.fhir_max_parallel,
    "FHIR_MAX_BYTES": lambda s: s.fhir_max_bytes,
    "FHIR_MAX_PAGES": lambda s: s.fhir_max_pages,
    "MAX_BODY_BYTES": lambda s: s.max_body_bytes,
    "MAX_DRAFT_ORDERS": lambda s: s.limits.max_draft_orders,
    "MAX_BUNDLE_ENTRIES": lambda s: s.limits.max_bundle_entries,
    "MAX_JSON_DEPTH": lambda s: s.limits.max_json_depth,
    "THREADS": lambda s: s.server.threads,
    "MAX_CONNECTIONS": lambda s: s.server.max_connections,
    "KEEPALIVE_SECONDS": lambda s: s.server.keepalive_seconds,
    "REQUEST_READ_SECONDS": lambda s: s.server.request_read_seconds,
    "DOSE_TOLERANCE": lambda s: s.dose_policy.tolerance,
    "WEIGHT_MAX_AGE_DAYS_ADULT": lambda s: s.dose_policy.weight_max_age_days_adult,
    "WEIGHT_MAX_AGE_DAYS_CHILD": lambda s: s.dose_policy.weight_max_age_days_child,
    "CORS_ALLOW_ORIGIN": lambda s: s.cors_allow_origin,
    "RETENTION_DAYS": lambda s: s.retention_days,
    "DISCOVERY_REQUIRES_JWT": lambda s: s.discovery_requires_jwt,
    "REVIEWER_TOKEN": lambda s: s.reviewer_token,
    "TRUSTED_PROXIES": lambda s: s.trusted_proxies,
    "METRICS_TOKEN": lambda s: s.metrics_token,
}
#: defaults that depend on the machine or the user, which the table describes in words
DESCRIBED = {"REPLAY_STORE", "KNOWLEDGE_ROOT", "STORE_URL"}


def readme_table() -> dict[str, str]:
    """Variable (without the prefix) -> the table's default column."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `IVIG_CDS_([A-Z_]+)` \| ([^|]*)\|", readme, re.M)}


def read_by_config() -> set[str]:
    source = (ROOT / "cds_service" / "config.py").read_text(encoding="utf-8")
    return set(re.findall(r'(?:get|listed)\("([A-Z_]+)"', source)) - {"XDG_STATE_HOME"}


def same(stated: str, actual: object) -> bool:
    if stated.startswith("none"):
        return actual is None or actual in ((), frozenset(), set())
    value = re.fullmatch(r"`([^`]*)`", stated)
    if value is None:
        return False
    text = value.group(1)
    if isinstance(actual, bool):
        return text == str(actual).lower()
    try:
        return Decimal(text) == Decimal(str(actual))
    except InvalidOperation:
        return text == str(actual)


def test_every_setting_read_is_in_the_table_and_nothing_else():
    assert set(readme_table()) == read_by_config() == set(DEFAULTS) | DESCRIBED


def test_each_default_in_the_table_is_the_one_the_code_gives():
    settings = Settings.from_env({f"{PREFIX}KNOWLEDGE_ROOT": str(ROOT)})
    wrong = {name: (stated, DEFAULTS[name](settings)) for name, stated in readme_table().items()
             if name in DEFAULTS and not same(stated, DEFAULTS[name](settings))}
    assert not wrong, wrong
