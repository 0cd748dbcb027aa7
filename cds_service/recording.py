"""Recording the cards a hook call returned, off the request path, and finding them again for feedback.

Why: writing the card rows inside the call made every call wait for a transaction of the store (a commit on SQLite,
round trips to PostgreSQL), and the calls of one process queued for the store's write lock. Here the call hands its
rows to this process's recorder and answers; one writer thread per process writes what has come in in one
transaction, waiting up to ``linger_seconds`` (0.1 s) after the first call of a batch for others to join it, so that
calls share a commit even when they do not overlap: a transaction costs the process about 0.4 ms of CPU, a call's rows
a tenth of that. (Lingering 20 ms, a worker serving one client committed every call or two; 0.1 s took 12 % off its CPU
per call, measured over HTTP; 0.25 s took nothing more.)

What must not change:
- Feedback is checked against the recorded cards, and may come at once, to any worker or host. So a lookup that
  misses a card first waits for this process's writes still pending, then reads the store again for up to
  ``grace_seconds``, which covers a write still under way in another process or on another host (a writer commits
  within its linger and tens of milliseconds; half a second leaves margin on a loaded machine and holds a thread for no
  longer when a client sends feedback on a card that never was).
- A card the store refused is not lost silently: the writer logs it as the call did (with the request id of each
  call it could not record), after trying each call's rows on their own so one bad call costs no other its record.
- Nothing is left unwritten at a normal exit: the process flushes the recorder when it ends (gunicorn ends a worker
  with sys.exit, which runs it).
- The queue is bounded: when the store falls behind by ``max_pending`` rows, calls wait for it as they did before.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .store import RecordedCard, Store, StoreError, card_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pending:
    rows: list[dict[str, Any]]
    request_id: str | None


class CardRecorder:
    """Writes the cards of each call to the store in a thread of its own; thread-safe, one per process."""

    def __init__(self, store: Store, *, grace_seconds: float = 0.5, linger_seconds: float = 0.1, batch_rows: int = 500,
                 max_pending: int = 10_000):
        self.store = store
        self.grace_seconds = grace_seconds
        self.linger_seconds = linger_seconds
        self.batch_rows = batch_rows
        self.max_pending = max_pending
        self._started_in: int | None = None  # the process whose writer thread runs (a forked worker starts its own)
        self._setup()

    def _setup(self) -> None:
        self._condition = threading.Condition()
        self._queue: list[_Pending] = []
        self._queued_rows = 0
        self._handed = 0  # calls handed to the recorder, and calls written (or given up on), in this process
        self._done = 0
        self._closing = False
        self._hurry = False  # someone waits for the writes: no lingering

    def record(self, service_id: str, hook: str, cards: Sequence[dict], *, request_id: str | None = None) -> None:
        """Hand one call's cards over; shown now. Returns at once unless the store is ``max_pending`` rows behind."""
        rows = card_rows(service_id, hook, cards, datetime.now(UTC))
        if not rows:
            return
        self._start()
        with self._condition:
            while self._queued_rows >= self.max_pending and not self._closing:
                self._condition.wait()
            self._queue.append(_Pending(rows, request_id))
            self._queued_rows += len(rows)
            self._handed += 1
            if len(self._queue) == 1 or self._queued_rows >= self.batch_rows:  # the writer waits for a first call, or
                self._condition.notify_all()  # lingers until its batch is full: only then is it woken

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every call handed over before now is written (or logged as not); False on timeout."""
        if self._started_in != os.getpid():
            return True
        with self._condition:
            target = self._handed
            self._hurry = True
            self._condition.notify_all()
            return self._condition.wait_for(lambda: self._done >= target, timeout)

    def cards(self, uuids: Iterable[str]) -> dict[str, RecordedCard]:
        """The recorded cards among these uuids, waiting for writes under way (see the module docstring). Raises
        StoreError when the store cannot be read."""
        wanted = set(uuids)
        found = self.store.cards(wanted)
        if len(found) == len(wanted):
            return found
        self.flush(self.grace_seconds)
        deadline = time.monotonic() + self.grace_seconds
        while True:
            found.update(self.store.cards(wanted - found.keys()))
            if len(found) == len(wanted) or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending and stop the writer (at exit); what the store did not take within `timeout` (gunicorn
        gives a worker 10 s to stop) is logged as not recorded."""
        if self._started_in != os.getpid():
            return
        if not self.flush(timeout):
            with self._condition:
                unwritten = self._handed - self._done
            log.error("cards of %d calls returned but not recorded at exit: the store did not take them in %gs",
                      unwritten, timeout)
        with self._condition:
            self._closing = True
            self._condition.notify_all()

    def _start(self) -> None:
        if self._started_in == os.getpid():
            return
        with _starting:
            if self._started_in == os.getpid():
                return
            if self._started_in is not None:  # forked from a process whose writer does not exist here
                self._setup()
            threading.Thread(target=self._write_forever, name="card-recorder", daemon=True).start()
            atexit.register(self.close)
            self._started_in = os.getpid()

    def _write_forever(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return
                self._condition.wait_for(lambda: self._hurry or self._closing or self._queued_rows >= self.batch_rows,
                                         self.linger_seconds)
                self._hurry = False
                batch, self._queue, self._queued_rows = self._queue, [], 0
                self._condition.notify_all()  # calls waiting for room may go on
            self._write(batch)
            with self._condition:
                self._done += len(batch)
                self._condition.notify_all()

    def _write(self, batch: list[_Pending]) -> None:
        if len(batch) > 1:
            try:
                self.store.insert_cards([row for call in batch for row in call.rows])
                return
            except Exception:  # noqa: BLE001 - one call's rows may be what the store refuses: each call tries alone
                for call in batch:
                    self._write([call])
                return
        call = batch[0]
        try:
            self.store.insert_cards(call.rows)
        except StoreError as exc:  # the advice matters more than its record: it was answered; say so in the log
            log.error("cards returned but not recorded (feedback on them will be refused): %s", exc,
                      extra={"request_id": call.request_id, "cards": len(call.rows)})
        except Exception:  # noqa: BLE001 - the writer must outlive any one failure
            log.exception("cards returned but not recorded (feedback on them will be refused)",
                          extra={"request_id": call.request_id, "cards": len(call.rows)})


_starting = threading.Lock()
