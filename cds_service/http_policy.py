"""What every HTTP endpoint of the app shares, whichever blueprint it is in: every error mapped to its status and
OperationOutcome (the one place that decides them), CORS, security headers, no token in a URL, no 500 with a trace,
and the check of a credential of our own (the report's, the metrics').

Why apart from the blueprints: the CDS Hooks endpoints (web.py), the FHIR endpoints (fhir_api.py), the report and
the observability endpoints raise the domain errors of errors.py and leave the answer to this module, so an error
is answered alike wherever it happens and a blueprint holds only its own routes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from .auth import AuthError
from .config import Settings
from .errors import RequestError, ServiceError, operation_outcome
from .prefetch import DataUnavailable
from .recommendation import UnreadableData
from .service import CdsService
from .store import StoreError

log = logging.getLogger(__name__)


def service() -> CdsService:
    """The service of the app answering the current request."""
    return current_app.extensions["ivig_cds"]


def outcome(status: int, diagnostics: str, code: str = "invalid") -> Response:
    """An OperationOutcome answer with one error issue."""
    response = jsonify(operation_outcome([(code, diagnostics)]))
    response.status_code = status
    return response


def error_response(exc: Exception) -> Response:
    """Every error to its status and OperationOutcome."""
    if isinstance(exc, AuthError):
        response = outcome(exc.status, exc.diagnostics, exc.issue_code)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, RequestError):
        return outcome(exc.status, exc.reason, exc.issue_code)
    if isinstance(exc, UnreadableData):  # well-formed, but not data a recommendation can be decided on
        return outcome(422, str(exc), "processing")
    if isinstance(exc, DataUnavailable):  # the data the answer needs could not be had: 412, one issue per key
        response = jsonify(exc.operation_outcome())
        response.status_code = 412
        return response
    if isinstance(exc, StoreError):
        log.error("%s %s: the card and feedback store is unavailable: %s", request.method, request.path, exc)
        return outcome(503, "the card and feedback store is unavailable; try again later", "transient")
    if isinstance(exc, HTTPException):
        response = outcome(exc.code or 500, exc.description or exc.name, "not-found" if exc.code == 404 else "processing")
        for name, value in exc.get_headers():  # e.g. Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response
    log.exception("unhandled error")
    return outcome(500, "internal error", "exception")


def presented_token(authorization: str | None) -> str | None:
    """The credential in an Authorization header: a Bearer token, or the password of Basic credentials."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def authorized(expected: str, authorization: str | None) -> bool:
    presented = presented_token(authorization)
    return presented is not None and hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def register(app: Flask, settings: Settings) -> None:
    """The error handlers, the token-in-URL refusal and the headers, for every blueprint of the app."""
    origin = settings.cors_allow_origin
    https = (settings.public_url or "").startswith("https://")

    def no_token_in_the_url() -> Response | None:
        """A token in a URL ends up in logs, proxies and browser histories: refuse it, and say where it goes.
        Runs before the JWT check, so that the client learns why."""
        if any(name.lower() == "access_token" for name in request.args):
            return outcome(400, "a token is never accepted in the URL (access_token); send the JWT in the "
                                "Authorization header as 'Bearer <token>'", "security")
        return None

    app.before_request_funcs.setdefault(None, []).insert(0, no_token_in_the_url)

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.method == "POST":  # hook calls and $apply answer about a patient: no cache may keep them
            response.headers["Cache-Control"] = "no-store"
        if https:  # only where the configured public URL says TLS is used (it ends at the proxy in front)
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    app.register_error_handler(ServiceError, error_response)
    app.register_error_handler(HTTPException, error_response)
    app.register_error_handler(Exception, error_response)
