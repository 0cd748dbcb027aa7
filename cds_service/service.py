"""One hook call, end to end, without HTTP: request in, CDS Hooks response out.

Used by the web endpoint and by `ivig-cds evaluate`, so both answer the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import requests

from . import cards, discovery, engine, openapi
from .config import Settings
from .inputs import facts_from
from .knowledge import KnowledgeBase
from .orders import is_ivig
from .prefetch import resolve
from .protocol import HookRequest, RequestError, parse_hook_request


@dataclass(frozen=True)
class CdsService:
    """The loaded knowledge and settings, with what is derived from them once."""

    knowledge: KnowledgeBase
    settings: Settings

    def __post_init__(self) -> None:
        object.__setattr__(self, "templates", discovery.prefetch_templates(self.knowledge))
        object.__setattr__(self, "services", discovery.services(self.knowledge))
        plan_ids = [r["id"] for r in self.knowledge.resources.values() if r["resourceType"] == "PlanDefinition"]
        object.__setattr__(self, "openapi", openapi.document(self.services, jwt_required=self.settings.auth.required, plan_ids=plan_ids))

    def hook_of(self, service_id: str) -> str | None:
        return next((s["hook"] for s in self.services if s["id"] == service_id), None)

    def call(self, service_id: str, body: bytes | str, *, today: date | None = None, session: requests.Session | None = None) -> dict:
        """Answer a POST to /cds-services/{service_id}. Raises RequestError (4xx) or DataUnavailable (412)."""
        hook = self.hook_of(service_id)
        if hook is None:
            raise RequestError(f"no CDS service with id {service_id!r}", status=404)
        return self.answer(parse_hook_request(body, hook), today=today, session=session)

    def answer(self, request: HookRequest, *, today: date | None = None, session: requests.Session | None = None) -> dict:
        selected = request.selected_orders()
        if not any(is_ivig(order, self.knowledge.terminology) for order in selected):
            return {"cards": []}  # not our order: no data fetched, nothing said
        prefetch = resolve(
            request,
            self.templates,
            timeout=self.settings.fhir_timeout,
            max_workers=self.settings.fhir_max_parallel,
            session=session,
            may_call=self.settings.may_call,
        )
        findings = engine.evaluate(
            self.knowledge,
            hook=request.hook,
            selected_orders=selected,
            draft_orders=request.draft_orders,
            facts=facts_from(prefetch),
            today=today or date.today(),
            dose_tolerance=self.settings.dose_tolerance,
        )
        return {"cards": cards.render(findings)}
