"""The application factory: knowledge loaded once, blueprints registered, no import-time side effects."""

from __future__ import annotations

import logging

from flask import Flask, Response, request

from . import fhir_api, http_policy, knowledge, observability, report_api, web
from .auth import JwtVerifier, require_jwt
from .config import Settings
from .json_provider import JsonProvider
from .service import CdsService
from .store import Store


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; a broken definition raises DefinitionError here, before any request is served."""
    settings = settings or Settings.from_env()
    # urllib3 logs each request URL at DEBUG, and our FHIR queries name the patient: keep it above DEBUG.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLogger("urllib3").level))
    app = Flask(__name__)
    app.json = JsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes  # larger bodies get 413
    app.extensions["ivig_cds"] = CdsService(knowledge.load(settings.knowledge_root), settings, open_store(settings))
    if settings.auth.required and settings.public_url is None:
        logging.getLogger(__name__).error("IVIG_CDS_PUBLIC_URL is not set: every call with a JWT gets 503 until it is")
    verifier = JwtVerifier(settings.auth)
    check_jwt = require_jwt(verifier, settings.public_url, on_refusal=observability.count_jwt_rejection)
    # The report is for reviewers in a browser, with a credential of its own (report_api.py); health and readiness
    # are for load balancers and orchestrators, which hold no CDS client JWT, and /metrics has its own credential.
    own_access = {report_api.bp.name, observability.bp.name}
    # Discovery holds no patient data, and EHRs read it when a service is registered, before any call: open unless
    # IVIG_CDS_DISCOVERY_REQUIRES_JWT says otherwise.
    open_endpoints = set() if settings.discovery_requires_jwt else {f"{web.bp.name}.discovery"}

    def check_jwt_unless_own_access() -> Response | None:
        return None if request.blueprint in own_access or request.endpoint in open_endpoints else check_jwt()

    app.before_request(check_jwt_unless_own_access)
    http_policy.register(app, settings)
    app.register_blueprint(web.bp)
    observability.register(app, verifier)
    app.register_blueprint(fhir_api.bp)
    app.register_blueprint(report_api.bp)
    return app


def open_store(settings: Settings) -> Store:
    """The card and feedback store, created or upgraded to the current schema, with cards older than the
    retention period deleted: both happen at every start-up (one process; gunicorn forks after it)."""
    store = Store(settings.store_url)
    store.upgrade()
    deleted = store.purge(settings.retention_days)
    if deleted:
        logging.getLogger(__name__).info("deleted %d cards older than %d days, with their feedback", deleted, settings.retention_days)
    store.release_connections()
    return store
