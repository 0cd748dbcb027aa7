"""GET /report: the committee's report page (report.py), for reviewers only.

Why a credential of its own: the page is for the CDS committee, in a browser, not for an EHR, so the CDS
client JWT that guards the hook endpoints does not apply to it (app.py lets this blueprint through). It is
never open by default: with no IVIG_CDS_REVIEWER_TOKEN configured the route answers 404, as if it did not
exist. With one, a request must present it, either as `Authorization: Bearer TOKEN` (scripts) or as the
password of HTTP Basic authentication with any user name (a browser asks for it); it is compared in
constant time, so the time of a refusal says nothing about how much of a guess was right.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request

from . import report
from .http_policy import authorized, outcome

log = logging.getLogger(__name__)
bp = Blueprint("report", __name__)
REALM = "IVIG-CDS report"


@bp.get("/report")
def report_page() -> Response:
    service = current_app.extensions["ivig_cds"]
    expected = service.settings.reviewer_token
    if not expected or service.store is None:
        return outcome(404, f"no such page: {request.path}", "not-found")
    if not authorized(expected, request.headers.get("Authorization")):
        log.warning("401 for GET /report: no or wrong reviewer credential")
        response = outcome(401, "the report needs the reviewer credential", "login")
        response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
        return response
    period = report.Period.parse(request.args.get("since"), request.args.get("until"))
    page = report.build(service.store, period, report.recommendation_labels(service.knowledge))
    response = Response(page, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"  # reviewer data: no shared cache keeps it
    response.headers["Content-Security-Policy"] = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
                                                   "style-src 'unsafe-inline'; img-src data:; font-src data:")
    return response
