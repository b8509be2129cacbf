"""The applier of the embedded backend (tracker/serve/embedded.py; docs/access.md, "How the
embedded backend writes"): the one thread that takes the journaled requests in order, in groups,
applies each through the pipeline, writes the group to the store in one write, then marks it
applied. A part of `EmbeddedService`, kept apart for size; the door (what appends to the queue)
stays there."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from schemas.envelope import Envelope
from tracker.pipeline import BATCH_SIZE
from tracker.serve.embedded_parts import RecordingTracker, event_ids
from tracker.serve.journal import Entry, Journal
from tracker.serve.service import LineResult, SubmitResult

# the embedded backend's one logger, as before the applier moved here
log = logging.getLogger("tracker.serve.embedded")

# A trickle of posts is gathered this long into one store write: each write costs chDB a data
# part per table and later merges, and a write per post kept the server's CPU (and the GIL) so
# busy that single posts took seconds (BENCHMARKS.md). A read or a request that waits for the
# applier cuts it short, so read-your-writes does not wait for it.
LINGER_S = 1.0
LINGER_EVENTS = 5_000  # a backlog this big is written at once
RETRY_S = 1.0  # after a failed group (the store is down): the journal keeps it meanwhile


class Applier:
    """Mixed into `EmbeddedService`, which provides the journal, the locks and the state they
    guard (its docstring: `_lock` for the store and the pipeline, `_door` for the duplicate
    check, `_state` for the queue and how far it is applied), starts `_run` on its thread, and
    builds the pipeline (`_new_tracker`)."""

    backend: str
    journal: Journal
    linger_s: float
    groups: int
    _lock: threading.Lock
    _door: threading.Lock
    _state: threading.Condition
    _tracker: RecordingTracker | None
    _queue: deque[Entry]
    _backlog: int
    _applied: int
    _pending: dict[str, int]
    _verdicts: dict[int, SubmitResult | None]
    _closing: bool
    _waiting: int

    def _new_tracker(self) -> RecordingTracker:
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            with self._state:
                while not self._ready() and not self._closing:
                    self._state.wait()
                if not self._ready():
                    return  # closing, and everything synced is applied
                self._linger()
                group = self._take()
            try:
                verdicts = self._apply_group(group)
            except Exception as exc:  # the store failed: the journal keeps the group
                log.error("applying %d journaled requests failed: %s; retrying", len(group), exc)
                self._tracker = None  # it may hold part of the group: rebuilt from the store
                with self._state:
                    self._state.wait(RETRY_S)
                    if self._closing:
                        return
                continue
            self._done(group, verdicts)

    def _linger(self) -> None:
        """A trickle of posts is gathered for up to `linger_s` into one write (under `_state`),
        unless someone waits for it to be applied (LINGER_S)."""
        deadline = time.monotonic() + self.linger_s
        while (
            not self._closing
            and not self._waiting
            and self._backlog < LINGER_EVENTS
            and (left := deadline - time.monotonic()) > 0
        ):
            self._state.wait(left)

    def _ready(self) -> bool:
        return bool(self._queue) and self._queue[0].position <= self.journal.synced()

    def _take(self) -> list[Entry]:
        """The synced entries at the head of the queue, up to the pipeline's batch (at least
        one): one store write for all of them."""
        group: list[Entry] = []
        events, synced = 0, self.journal.synced()
        for entry in self._queue:
            if entry.position > synced or (group and events + len(entry) > BATCH_SIZE):
                break
            group.append(entry)
            events += len(entry)
        return group

    def _apply_group(self, group: list[Entry]) -> list[SubmitResult]:
        """Each entry through the pipeline in order, then the group in one store write. Applying
        an entry again (after a failure or a crash) changes nothing: its logged lines are
        duplicates, its dead letters are kept once."""
        with self._lock:
            tracker = self._tracker or self._rebuilt()
            verdicts = [self._apply(tracker, entry) for entry in group]
            tracker.flush()
        return verdicts

    def _apply(self, tracker: RecordingTracker, entry: Entry) -> SubmitResult:
        origin = f"api:{entry.posted_by}"
        envelope = Envelope(posted_by=entry.posted_by, received_at=entry.received_at)
        tracker.refused = {}
        if entry.parsed is not None:
            parsed = [
                (f"{origin}:{n}", p) for (n, _), p in zip(entry.lines, entry.parsed, strict=True)
            ]
            logged_before = tracker.feed_read(parsed, origin, envelope=envelope)
        else:  # read back from the journal: read as any input is, refusals are dead letters
            logged_before = set()
            for n, raw in entry.lines:
                tracker.feed(raw, f"{origin}:{n}", envelope=envelope)
        ids = event_ids(entry)
        results, seen = [], set(logged_before)
        for (n, _), event_id in zip(entry.lines, ids, strict=True):
            reason = tracker.refused.get(f"{origin}:{n}")
            if reason is not None:
                results.append(LineResult(n, "rejected", event_id, reason))
            elif event_id is not None and event_id in seen:
                results.append(LineResult(n, "duplicate", event_id))
            else:
                results.append(LineResult(n, "accepted", event_id))
                if event_id is not None:
                    seen.add(event_id)
        return SubmitResult(tuple(results), self.backend)

    def _done(self, group: list[Entry], verdicts: list[SubmitResult]) -> None:
        last = group[-1]
        try:
            self.journal.applied(last)
        except OSError as exc:  # the mark is an optimisation: a restart re-applies, harmlessly
            log.warning("intake journal: the applied mark cannot be written: %s", exc)
        with self._door:
            for entry in group:
                for event_id in event_ids(entry):
                    if event_id is not None and self._pending.get(event_id) == entry.seq:
                        del self._pending[event_id]
        with self._state:
            for entry, verdict in zip(group, verdicts, strict=True):
                self._queue.popleft()
                self._backlog -= len(entry)
                if entry.seq in self._verdicts:
                    self._verdicts[entry.seq] = verdict
            self._applied = last.seq
            self.groups += 1
            self._state.notify_all()

    def _rebuilt(self) -> RecordingTracker:
        self._tracker = self._new_tracker()
        return self._tracker
