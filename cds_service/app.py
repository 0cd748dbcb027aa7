"""The application factory: knowledge loaded once, blueprints registered, no import-time side effects."""

from __future__ import annotations

from flask import Flask

from . import knowledge, web
from .config import Settings
from .service import CdsService


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; a broken definition raises DefinitionError here, before any request is served."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False
    app.extensions["ivig_cds"] = CdsService(knowledge.load(settings.knowledge_root), settings)
    web.register(app)
    return app
