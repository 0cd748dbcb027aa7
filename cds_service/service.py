"""One hook call, end to end, without HTTP: request in, CDS Hooks response out.

Used by the web endpoint and by `ivig-cds evaluate`, so both answer the same.
"""

from __future__ import annotations

from datetime import date

import requests

from . import cards, collector, discovery, engine, feedback, metrics, openapi
from .config import Settings
from .errors import RequestError
from .inputs import facts_from
from .jsonlog import current_request_id
from .knowledge import KnowledgeBase
from .orders import OrderKind
from .prefetch import resolve
from .protocol import HookRequest, parse_hook_request
from .recording import CardRecorder
from .store import Store
from .subject import about_another_patient


class CdsService:
    """The loaded knowledge and settings, with what is derived from them once, at start-up."""

    def __init__(self, knowledge: KnowledgeBase, settings: Settings, store: Store | None = None):
        self.knowledge = knowledge
        self.settings = settings
        #: where returned cards and their feedback are kept; None (offline `evaluate`) records nothing
        self.store = store
        #: writes the returned cards to the store off the request path (recording.py)
        self.recorder = CardRecorder(store) if store is not None else None
        self.templates = discovery.prefetch_templates(knowledge)
        self.services = discovery.services(knowledge)
        plan_ids = [r["id"] for r in knowledge.resources.values() if r["resourceType"] == "PlanDefinition"]
        self.openapi = openapi.document(self.services, jwt_required=settings.auth.required, plan_ids=plan_ids)

    def hook_of(self, service_id: str) -> str | None:
        return next((s["hook"] for s in self.services if s["id"] == service_id), None)

    def call(self, service_id: str, body: bytes | str, *, today: date | None = None, session: requests.Session | None = None) -> dict:
        """Answer a POST to /cds-services/{service_id}. Raises RequestError (4xx) or DataUnavailable (412)."""
        hook = self.hook_of(service_id)
        if hook is None:
            raise RequestError(f"no CDS service with id {service_id!r}", status=404)
        with collector.held_off():  # the call leaves no garbage cycles of its own: collector.py
            response = self.answer(parse_hook_request(body, hook, self.settings.limits), today=today, session=session)
        metrics.current().count_cards(response["cards"])
        if self.recorder is not None and response["cards"]:
            self.recorder.record(service_id, hook, response["cards"], request_id=current_request_id())
        return response

    def feedback(self, service_id: str, body: bytes) -> None:
        """Store a POST to /cds-services/{service_id}/feedback. Raises RequestError (400, 404) or StoreError."""
        if self.hook_of(service_id) is None:
            raise RequestError(f"no CDS service with id {service_id!r}", status=404)
        if self.store is None or self.recorder is None:
            raise RequestError("this instance keeps no feedback", status=404)
        self.store.record_feedback(feedback.parse(body, service_id, self.recorder.cards, self.settings.limits.max_json_depth))

    def answer(self, request: HookRequest, *, today: date | None = None, session: requests.Session | None = None) -> dict:
        # an order for another patient than the context's is no order of this patient's: nothing to say about it here
        selected = tuple(o for o in request.selected_orders() if not about_another_patient(o, request.patient_id))
        drafts = tuple(o for o in request.draft_orders if not about_another_patient(o, request.patient_id))
        kinds = [self.knowledge.order_rules.kind(order) for order in selected]  # each order's kind, once per call
        if set(kinds) <= {OrderKind.OTHER}:
            return {"cards": []}  # not our order: no data fetched, nothing said
        prefetch = {} if OrderKind.IVIG not in kinds else resolve(  # "the route decides" needs no patient data
            request,
            self.templates,
            timeout=self.settings.fhir_timeout,
            max_workers=self.settings.fhir_max_parallel,
            max_pages=self.settings.fhir_max_pages,
            max_bytes=self.settings.fhir_max_bytes,
            session=session,
            may_call=self.settings.may_call,
            public_only=self.settings.public_addresses_only,
        )
        findings = engine.evaluate(self.knowledge, engine.prepare(
            self.knowledge,
            hook=request.hook,
            selected_orders=selected,
            draft_orders=drafts,
            facts=facts_from(prefetch, request.patient_id),
            today=today or date.today(),
            policy=self.settings.dose_policy,
            kinds=kinds,
        ))
        return {"cards": cards.render(findings)}
