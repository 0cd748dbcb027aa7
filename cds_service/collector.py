"""The cyclic garbage collector, held off while a hook call is read and answered.

A request's objects form no reference cycles: parsed JSON is a tree, and a hook call leaves none of its own but, at
times, one small closure of fhirpathpy's (tests/test_collector.py holds it to that). Reference counting frees the rest
when the call ends, so the cyclic collector has nothing to find in it; yet it walks it again and again while it lives,
and a large request (a prefetch of 10,000 resources is hundreds of thousands of objects) set off a full collection in
nearly every call, each walking the whole of it: a fifth of such a call's time. Held off, the collector catches up on
whatever else was made (by other threads) as soon as the call ends. (Held off only while the JSON is parsed, it would
gain nothing: its first collection afterwards walks the whole tree at once.)

Only the thread that finds the collector running holds it off, and only it lets it run again: another thread's call
that starts meanwhile runs inside the same pause, and if it outlasts it, it runs with the collector on. The collector
is never left off for longer than one call (its FHIR queries included, when it has to fetch data).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held_off() -> Iterator[None]:
    """No cyclic collection inside the block (see the module docstring); nothing changes if it is off already."""
    mine = gc.isenabled()
    if mine:
        gc.disable()
    try:
        yield
    finally:
        if mine:
            gc.enable()
