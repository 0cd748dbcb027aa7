"""All settings in one place, read from the environment once, when the app is created."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

PREFIX = "IVIG_CDS_"


def _default_knowledge_root() -> Path:
    """The folder holding plandefinitions/ and valuesets/: the working directory, else the repository."""
    cwd = Path.cwd()
    if (cwd / "plandefinitions").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    knowledge_root: Path
    #: seconds allowed for each query to the EHR's FHIR server (queries run in parallel)
    fhir_timeout: float = 3.0
    #: how far a draft's daily dose or total may stray from the regimen before we warn (0.10 = 10 %)
    dose_tolerance: Decimal = Decimal("0.10")
    #: Access-Control-Allow-Origin; the CDS Hooks Sandbox calls from a browser
    cors_allow_origin: str = "*"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        def get(name: str, default: str) -> str:
            return environ.get(PREFIX + name, default)

        return cls(
            knowledge_root=Path(get("KNOWLEDGE_ROOT", str(_default_knowledge_root()))),
            fhir_timeout=float(get("FHIR_TIMEOUT", "3.0")),
            dose_tolerance=Decimal(get("DOSE_TOLERANCE", "0.10")),
            cors_allow_origin=get("CORS_ALLOW_ORIGIN", "*"),
        )
