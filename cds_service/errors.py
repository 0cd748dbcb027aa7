"""The service's one exception hierarchy, and the one shape every error is told in (a FHIR OperationOutcome).

Why here, apart from Flask: the engine, the protocol parser, the prefetcher and the stores raise *domain* errors that
say what went wrong (bad input, data of the wrong shape, data unavailable, a store down, a refused token), never an
HTTP status. `http_policy.error_response` is the one place that maps each kind to its status; the CLI tells the same
errors as text. A new kind of error subclasses ServiceError and gets its status there.
"""

from __future__ import annotations

from collections.abc import Iterable


class ServiceError(Exception):
    """Base of every error a request can end in, short of a bug (which is a 500)."""


class RequestError(ServiceError):
    """A request we refuse, with a reason a client developer can act on. ``status`` says which kind of refusal:
    400 malformed (the default), 404 no such thing, 413 too large; http_policy answers with it."""

    status: int
    reason: str

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    @property
    def issue_code(self) -> str:
        """The OperationOutcome issue type that says what kind of refusal this is."""
        return {404: "not-found", 413: "too-long", 422: "processing"}.get(self.status, "invalid")


def operation_outcome(issues: Iterable[tuple[str, str]]) -> dict:
    """An R4 OperationOutcome of error issues, each (issue type, diagnostics): the one place its shape is written."""
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics} for code, diagnostics in issues]}
