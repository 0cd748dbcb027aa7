"""Logs as one JSON object per line, each naming the request it belongs to.

Why JSON: a log collector reads fields, not prose; a value with a quote or a newline in it (a path, a reason) cannot
split or forge a line. Why a request id: one call's lines (its refusal, its FHIR failures, its access line) are
found together, and matched with the proxy's log when the proxy sent the id (forwarded.py).

What is never written: a token (the JWT is not logged anywhere; a token sent in a URL is refused, and the access
line shows the path without its query string), and a patient identifier (nothing in the service logs patient
data; an exception is written as its type and the places it passed through, without its message, since a
message may quote a value it was given).
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from typing import Any

#: the attributes every LogRecord has; any other (given with ``extra=``) is written as a field of its own
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def current_request_id() -> str | None:
    """The id of the request this thread is answering, if any."""
    try:
        from flask import g, has_request_context
    except ImportError:  # pragma: no cover - Flask is a dependency
        return None
    return g.get("request_id") if has_request_context() else None


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, pid (which worker), request_id, any ``extra`` fields; an exception without
    its message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            entry["exception"] = exc_type.__qualname__
            entry["trace"] = [f"{frame.filename}:{frame.lineno} {frame.name}" for frame in traceback.extract_tb(tb)]
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A logging.config.dictConfig of the service and of gunicorn's own loggers: everything to standard error
    as JSON lines. gunicorn's access log stays off: the app writes one access line per request (observability.py),
    with the request id, the status and the time taken."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
            # Alembic says at INFO what it sets up each time the store's schema is read (every readiness probe)
            "alembic": {"level": "WARNING"},
        },
    }
