"""The R4 check of a suggested order, asked element by element (suggestion._valid), gives the whole R4 model's answer.

The suggested order keeps from the draft only what the R4 model accepts; the check asks each element on its own and
the rules across elements, rather than building the whole model for each draft. Here both answer for several
thousand orders made of valid and broken elements of every kind a draft can bring, in every combination drawn."""

from __future__ import annotations

import random
from typing import Any

from cds_service.suggestion import _valid, _valid_whole

CONCEPT = {"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02", "display": "immunoglobulins"}]}
#: for each element an order may hold: first a value the model accepts, then others it may accept or refuse (None: the
#: element is absent)
VARIANTS: dict[str, list[Any]] = {
    "id": ["ivig-1", None, "a.b-c", "has space", "x" * 65, 5, ""],
    "status": ["draft", None, "drafted", 3],
    "intent": ["order", "proposal", None, "orders"],
    "subject": [{"reference": "Patient/p1"}, None, {}, {"reference": 5}, {"reference": "Patient/p1", "foo": 1}, "Patient/p1"],
    "medicationCodeableConcept": [CONCEPT, None, {}, {"text": "IVIG"}, {"coding": {"code": "x"}}, {"coding": [None]},
                                  {"coding": [{"code": 5}]}, {"text": "IVIG", "extra": True}],
    "medicationReference": [{"reference": "#med"}, None, {"reference": "Medication/m1", "display": "IVIG"}, {"reference": []}],
    "encounter": [{"reference": "Encounter/e1"}, None, {"identifier": {"value": "e1"}}, {"reference": {"x": 1}}],
    "requester": [{"reference": "Practitioner/d1"}, None, {"display": 7}],
    "identifier": [[{"system": "urn:x", "value": "1"}], None, [], [None], [{"value": 1}], {"value": "1"}, [{"use": "nope"}]],
    "reasonCode": [[CONCEPT], None, [{"coding": [{"system": "http://snomed.info/sct", "code": "40956001"}]}], [None], ["G61.0"]],
    "reasonReference": [[{"reference": "Condition/c1"}], None, [None, {"reference": "Condition/c1"}], [{"reference": 1}]],
    "note": [[{"text": "slow infusion"}], None, [{"text": ""}], [{"author": "x"}], [{"text": "a", "time": "yesterday"}]],
    "authoredOn": ["2026-12-02", None, "2026-12-02T10:00:00Z", "2026-12-02T10:00:00", "2026-13-01", "", 20261202],
    "contained": [[{"resourceType": "Medication", "id": "med", "code": CONCEPT}], None,
                  [{"resourceType": "Medication", "id": "med", "code": {"coding": "x"}}], [{"id": "med"}], [None]],
    "dosageInstruction": [[{"text": "28 g daily", "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}}],
                          None, [{"timing": {"repeat": {"periodUnit": "fortnight"}}}]],
}
MEDICATIONS = ("medicationCodeableConcept", "medicationReference")


def orders(count: int) -> list[dict[str, Any]]:
    """Orders of valid elements (each present or not, one medication[x]), with up to three elements drawn from all
    their values."""
    draw = random.Random(20261202)
    made = []
    for _ in range(count):
        values = {name: variants[0] if name in ("status", "intent", "subject") or draw.random() < 0.5 else None
                  for name, variants in VARIANTS.items() if name not in MEDICATIONS}
        medication = draw.choice(MEDICATIONS)
        values[medication] = VARIANTS[medication][0]
        for name in draw.sample(sorted(VARIANTS), draw.randint(0, 3)):
            values[name] = draw.choice(VARIANTS[name])
        made.append({"resourceType": "MedicationRequest", **{k: v for k, v in values.items() if v is not None}})
    return made


def test_the_element_by_element_check_gives_the_whole_models_answer():
    differ, verdicts = [], []
    for order in orders(4000):
        ours, model = _valid(order), _valid_whole(order)
        verdicts.append(model)
        if ours != model:
            differ.append(f"element check {ours}, model {model}: {order}")
    assert not differ, f"{len(differ)} differ:\n" + "\n".join(differ[:10])
    assert sum(verdicts) >= 200 and len(verdicts) - sum(verdicts) >= 200, "both answers must come up often"


def test_an_element_the_check_does_not_know_goes_to_the_whole_model():
    known = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
             "medicationCodeableConcept": CONCEPT}
    assert _valid(known)
    for extra in ({"priority": "stat"}, {"priority": "soon"}, {"_status": {"extension": []}}, {"madeUp": 1}):
        order = {**known, **extra}
        assert _valid(order) == _valid_whole(order), extra
    assert not _valid({**known, "resourceType": "ServiceRequest"})
