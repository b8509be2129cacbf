"""The embedded backend of `tracker serve`: one pipeline into the store, in this process
(module doc of tracker/serve/service.py for what a request becomes; docs/access.md, "How the
embedded backend writes").

A request is checked, authorized and told apart from the duplicates at the door, as ever; its
accepted lines are appended to the intake journal (tracker/serve/journal.py) and made durable,
and then it is answered: accepted means "in the journal", as it means "in the events topic"
with a broker. One applier thread (tracker/serve/embedded_applier.py) applies the journal in
order, in groups, through the pipeline (the engine, then one store write per group) and records
how far it got; a restart applies what was journaled and not yet applied. Reads wait until
everything journaled before them is applied (read-your-writes). The engine's rejections are dead
letters (`/v1/rejects`), as with a broker; a client that wants the engine's verdict in the
answer asks for it (`wait_applied`: the pages and `tracker post` do).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import cast

from engine import WorkCalendar
from engine.step import Parsed
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import Store, StoreError, StoreReader
from tracker.principals import Principal
from tracker.serve.embedded_applier import LINGER_S, Applier
from tracker.serve.embedded_parts import LockedReader, RecordingTracker, event_ids
from tracker.serve.journal import Entry, Journal, JournalError
from tracker.serve.service import (
    Clock,
    Door,
    LineResult,
    Service,
    ServiceBusy,
    ServiceUnavailable,
    SubmitResult,
    logged_poster,
    wall_clock,
)
from tracker.serve.signing import intake_signer

log = logging.getLogger("tracker.serve.embedded")

MAX_BACKLOG = 100_000  # journaled events not yet applied before the door waits (then 503)
# While a request is being checked and journaled, the applier waits between events (it holds
# the GIL for nearly all of its work, so without this the door got about half the CPU and its
# requests waited behind the burst it was applying: BENCHMARKS.md, issue 10). The wait is
# bounded per event, and there is none while anyone waits for the applier (a read, a request
# waiting for room in the backlog or for its verdict), so read-your-writes and the backlog's
# bound are as before; a door that waits for the store's lock is not counted as at work.
YIELD_MAX_S = 0.02


class EmbeddedService(Applier, Service):
    """No broker: the intake journal and one pipeline into the store, in this process
    (`tracker serve` alone is a whole tracker). Locks: `_door` orders the journal and the
    duplicate check; `_lock` serializes every use of the store and the pipeline (the applier's
    groups, reads, a retraction's look-up of its target's poster); `_state` guards the queue of
    journaled entries and how far they are applied."""

    backend = "embedded"

    def __init__(
        self,
        store: Store,
        registry: Registry,
        rulebooks: Mapping[str, Rulebook],
        calendar: WorkCalendar,
        *,
        clock: Clock = wall_clock,
        lock_timeout_s: float = 30.0,
        journal_dir: Path | None = None,
        max_backlog: int = MAX_BACKLOG,
        linger_s: float = LINGER_S,
    ) -> None:
        """`journal_dir`: where the intake journal lives (None: in memory only, for a memory
        store). `max_backlog`: journaled events not yet applied that the door accepts before
        it waits (a request still waiting after the timeout is 503, nothing of it taken).
        `linger_s`: how long the applier gathers a trickle of posts into one write (LINGER_S)."""
        super().__init__(registry, rulebooks, clock=clock, lock_timeout_s=lock_timeout_s)
        self.store = store
        self.max_backlog = max_backlog
        self.linger_s = linger_s
        self._calendar = calendar
        self._lock = threading.Lock()
        self._door = threading.Lock()
        self._state = threading.Condition()
        self._tracker: RecordingTracker | None = self._new_tracker()
        try:
            self.journal = Journal(journal_dir)
            self._queue: deque[Entry] = deque(self.journal.recover())
        except OSError as exc:
            raise ServiceUnavailable(f"the intake journal cannot be read: {exc}") from None
        if self._queue:
            log.warning("intake journal: %d requests to apply from before", len(self._queue))
        self._backlog = sum(len(e) for e in self._queue)  # events journaled, not yet applied
        self._journaled = self._queue[-1].seq if self._queue else 0
        self._applied = 0  # the seq of the last entry applied
        self._pending: dict[str, int] = {}  # event id -> the seq of the entry that holds it
        for entry in self._queue:  # from before a restart: duplicates and posters, as if new
            for event_id in event_ids(entry):
                if event_id is not None:
                    self._pending[event_id] = entry.seq
                    self.remember(event_id, entry.posted_by)
        self._verdicts: dict[int, SubmitResult | None] = {}  # seq -> verdict, for who waits
        self._closing = False
        self._waiting = 0  # reads and requests waiting for the applier
        self._at_door = 0  # requests being checked and journaled: the applier lets them go first
        self._door_count = threading.Lock()
        self._door_clear = threading.Event()  # set while no request is at the door
        self._door_clear.set()
        self.groups = 0  # groups applied (for tests and the curious)
        self._thread = threading.Thread(target=self._run, name="tracker-serve-apply", daemon=True)
        self._thread.start()

    def _new_tracker(self) -> RecordingTracker:
        # the one writer of its store (chDB lets one process hold it): the ids of the event log
        # are kept in memory, and no request asks the store for them
        tracker = RecordingTracker(
            self.store,
            self.registry,
            self.rulebooks,
            self._calendar,
            clock=self.clock,
            remember_log=True,
            signer=intake_signer(),
        )
        tracker.pause = self._yield_to_door
        tracker.refused = {}
        try:
            tracker.restore()
        except StoreError as exc:
            raise ServiceUnavailable(f"the store cannot be read: {exc}") from None
        return tracker

    # -- the door --------------------------------------------------------------------------------

    def submit(
        self, raws: Sequence[str], principal: Principal, *, wait_applied: bool = False
    ) -> SubmitResult:
        with self._door_work():
            door = self.read_lines(raws)
            self.authorize(door, principal, self._posted_by_of)
        if door.refused:
            return SubmitResult(tuple(door.refused), self.backend)
        self._room(len(door.passed))
        received_at = self.clock()
        with self._door_work(), self._held(self._door):
            results, entry = self._journal(door, principal, received_at, wait_applied)
        answer = SubmitResult(tuple(results), self.backend)
        if entry is None:
            return answer
        try:
            self.journal.sync(entry.position)
        except JournalError as exc:
            # journaled but maybe not durable: it is applied all the same; a retry is a duplicate
            raise ServiceUnavailable(f"{exc}; send the request again") from None
        with self._state:
            self._state.notify_all()  # the applier takes what is synced
        return self._verdict(entry, answer) if wait_applied else answer

    def _journal(
        self, door: Door, principal: Principal, received_at: datetime, wait_applied: bool
    ) -> tuple[list[LineResult], Entry | None]:
        """Under the door's lock: the duplicates told apart (logged, or journaled and not yet
        applied, or earlier in the request), the rest appended to the journal as one entry."""
        tracker = self._tracker  # None while it is rebuilt: the applier tells duplicates then
        results, accepted, seen = [], [], set()
        for item in door.passed:
            event_id = item.event.event_id
            logged = tracker is not None and tracker.in_log(event_id)
            if event_id in seen or event_id in self._pending or logged:
                results.append(LineResult(item.line, "duplicate", event_id))
            else:
                results.append(LineResult(item.line, "accepted", event_id))
                accepted.append(item)
                seen.add(event_id)
        if not accepted:
            return results, None
        try:
            entry = self.journal.append(
                principal.id,
                received_at,
                [(i.line, i.raw) for i in accepted],
                [Parsed(i.event, i.raw) for i in accepted],
            )
        except JournalError as exc:
            raise ServiceUnavailable(str(exc)) from None
        for item in accepted:
            self._pending[item.event.event_id] = entry.seq
            self.remember(item.event.event_id, principal)
        with self._state:
            self._queue.append(entry)
            self._backlog += len(entry)
            self._journaled = entry.seq
            if wait_applied:
                self._verdicts[entry.seq] = None
        return results, entry

    def _room(self, events: int) -> None:
        """Wait until the backlog has room for the request (one over the limit alone is let
        in), or refuse it (503) with nothing taken."""
        with self._state:
            self._wait_for(
                lambda: not self._backlog or self._backlog + events <= self.max_backlog,
                time.monotonic() + self.lock_timeout_s,
            )

    def _wait_for(self, ready: Callable[[], bool], deadline: float) -> None:
        """With the state lock held: wait until `ready()`, or raise ServiceBusy at `deadline`.
        While anyone waits, the applier does not linger to gather a bigger group."""
        self._waiting += 1
        self._state.notify_all()
        try:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._busy()
                self._state.wait(left)
        finally:
            self._waiting -= 1

    def _verdict(self, entry: Entry, answer: SubmitResult) -> SubmitResult:
        """The answer once the applier applied the entry: the engine's verdict on each line
        (accepted, duplicate, rejected); the journal's answer if that takes over the timeout
        (the lines are in the journal and will be applied)."""
        with self._state:
            with contextlib.suppress(ServiceBusy):  # the journal's answer stands then
                self._wait_for(
                    lambda: self._applied >= entry.seq, time.monotonic() + self.lock_timeout_s
                )
            verdict = self._verdicts.pop(entry.seq, None)
        if verdict is None:
            return answer
        applied = {r.line: r for r in verdict.lines}
        lines = tuple(applied.get(r.line, r) for r in answer.lines)
        return SubmitResult(lines, self.backend)

    def _posted_by_of(self, event_id: str) -> str | None:
        recent = self.recent_poster(event_id)
        if recent is not None:
            return recent
        self._count_at_door(-1)  # the applier holds the lock: it must not wait for this door
        try:
            with self._held(self._lock):
                return logged_poster(self.store, event_id)
        finally:
            self._count_at_door(1)

    @contextlib.contextmanager
    def _door_work(self) -> Iterator[None]:
        """A request's checks and journaling: the applier waits between events meanwhile."""
        self._count_at_door(1)
        try:
            yield
        finally:
            self._count_at_door(-1)

    def _count_at_door(self, change: int) -> None:
        with self._door_count:
            self._at_door += change
            if self._at_door:
                self._door_clear.clear()
            else:
                self._door_clear.set()

    def _yield_to_door(self) -> None:
        """The applier, between events: while a request is at the door, wait until it leaves
        (the door gets the GIL at once, rather than after the interpreter's switch interval at
        each of its hand-overs), at most YIELD_MAX_S per event. A wait, not a poll: the
        applier wakes once, when the door is clear."""
        if self._at_door and not self._waiting:
            self._door_clear.wait(YIELD_MAX_S)

    # -- the applier (its thread: tracker/serve/embedded_applier.py) ----------------------------

    def settle(self, timeout_s: float | None = None) -> None:
        """Wait until everything journaled so far is applied (ServiceBusy after the timeout)."""
        deadline = time.monotonic() + (self.lock_timeout_s if timeout_s is None else timeout_s)
        with self._state:
            target = self._journaled
            self._wait_for(lambda: self._applied >= target, deadline)

    # -- reading and closing ---------------------------------------------------------------------

    def reader(self) -> StoreReader:
        self.settle()  # read-your-writes: what was answered before this read is in the store
        return cast(StoreReader, LockedReader(self.store, self))

    def close(self) -> None:
        """Apply what is journaled (within the timeout; the rest at the next start), checkpoint
        the engine's state (the next start restores it: docs/ingest.md), then close the store."""
        with self._state:
            self._closing = True
            self._state.notify_all()
        self._thread.join(self.lock_timeout_s)
        with self._held(self._lock):
            tracker = self._tracker
            if tracker is not None and not self._thread.is_alive():  # else the applier's
                try:
                    tracker.checkpoint()
                except StoreError as exc:  # the next start replays the log instead
                    log.warning("no checkpoint written on close: %s", exc)
            self.store.close()
