"""The cyclic garbage collector is held off while a request is read and answered (collector.py): that is sound only
because reading and answering a hook call leave no reference cycles of their own, which reference counting could not
free, but a few small objects at most."""

from __future__ import annotations

import gc
import json
from collections import Counter
from typing import Any

import pytest

from cds_service import collector
from cds_service.protocol import parse_hook_request
from tests.fhir_data import condition, days_ago, gbs, hook_request, ivig_order, medication_request, observation, prefetch, weight
from tests.patients import catalogue


def requests() -> dict[str, dict]:
    """Every catalogue patient, and a long record with unreadable entries among its results."""
    long_record = prefetch(
        conditions=[gbs(onset=days_ago(5))] + [condition(f"I10.{i}") for i in range(20)],
        weights=[weight(70, when=days_ago(1))],
        labs=[observation("98979-8", 50 + i, "mL/min/{1.73_m2}", low=60, when=days_ago(i)) for i in range(30)]
        + [observation("98979-8", "45", "mL/min/{1.73_m2}", when="2026-02-30")],
        medications=[medication_request(f"C09AA0{i % 9}") for i in range(20)],
    )
    return {**catalogue(), "long record": hook_request([ivig_order()], prefetch=long_record)}


def test_reading_and_answering_calls_leaves_no_cycles_but_a_few_small_objects(app: Any) -> None:
    """What the collector finds after a call for every request: none of the requests' data, and at most one closure of
    fhirpathpy's (a function that calls itself) per call."""
    service = app.extensions["ivig_cds"]
    bodies = [(json.dumps(body).encode(), body["hook"]) for body in requests().values()]
    for raw, hook in bodies:  # what is made once per process (memos) is made now
        service.answer(parse_hook_request(raw, hook))
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds is kept in gc.garbage, to be looked at
    try:
        with collector.held_off():
            for raw, hook in bodies:
                assert "cards" in service.answer(parse_hook_request(raw, hook))
        gc.collect()
        found = Counter(type(o).__name__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert set(found) <= {"function", "cell", "tuple"}, found
    assert found["function"] <= len(bodies), found


def test_the_collector_is_held_off_in_the_block_and_left_as_it_was() -> None:
    assert gc.isenabled()
    with collector.held_off():
        assert not gc.isenabled()
        with collector.held_off():  # a call inside a call
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), collector.held_off():
        raise ValueError("the block fails")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector.held_off():
            assert not gc.isenabled()
        assert not gc.isenabled()  # someone else turned it off: theirs to turn on
    finally:
        gc.enable()
