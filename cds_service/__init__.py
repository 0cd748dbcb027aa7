"""IVIG-CDS: a CDS Hooks service for the EFNS 2008 guideline on IVIG in neurological diseases."""

from importlib.metadata import PackageNotFoundError, version

try:
    #: the service's version, written once (pyproject.toml) and read from the installed package's metadata, so that
    #: discovery, the CapabilityStatement, the FHIR package and the ValueSets cannot disagree on it
    __version__ = version("ivig-cds")
except PackageNotFoundError:  # pragma: no cover - only a checkout used without `pip install -e .`
    __version__ = "0+unknown"
