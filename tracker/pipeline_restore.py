"""Where the tracker starts from: its partition's checkpoint, or a replay of the event log, and
the writes a stopped run left half-done finished again (docs/ingest.md). A part of `Tracker`
(tracker/pipeline.py), kept apart for size."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from config.signing import Signer
from engine import Engine, Outcome, WorkCalendar
from schemas.events import EventError, parse_event
from schemas.ledger import LoggedEvent
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import Batch, Store, StoreError
from sinks.event_log import EventLogWriter, claim_event_log
from tracker import checkpoints


class Restore:
    """Mixed into `Tracker`, which provides the store, the engine and its position in the
    partition's log, and the writes."""

    store: Store
    signer: Signer | None
    engine: Engine
    partition: int
    batch_size: int
    warn: checkpoints.Warn
    _config: tuple[Registry, Mapping[str, Rulebook], WorkCalendar]
    _seq: int
    _head: str | None
    _checkpoint_seq: int
    _log_ids: set[str] | None
    _log_written: bool
    _claimed: bool

    def flush(self) -> None:
        raise NotImplementedError

    def _sign(self, batch: Batch) -> None:
        raise NotImplementedError

    def restore(self) -> int:
        """Replay the logged events so that new input continues the stream, and finish the
        writes of a run that stopped half-way (sinks/base.py): the outputs of the events logged
        after the last commit mark are derived again and written, with a new mark. With a
        trusted checkpoint (tracker/checkpoints.py) only the events after it are replayed.
        A store whose event log a Kafka worker writes is refused first (sinks/event_log.py)."""
        self._claim()
        committed = self.store.committed_seq(self.partition)
        resumed = self._resume()
        replayed = 0
        ids = self._log_ids = None if self._log_ids is None else set()
        if not resumed:
            replayed = self._replay_log(committed, ids)
        elif ids is not None:  # the events after the checkpoint are replayed below
            ids.update(self.store.logged_ids())
        while page := self.store.logged_events_after(self.partition, self._seq, self.batch_size):
            redo = Batch()  # the events are rewritten as well: the commit mark is made from them
            for logged in page:
                outcome = self._replay(logged)
                if logged.seq > committed:
                    redo.events.append(logged)
                    redo.entries.extend(outcome.entries)
                    redo.deadlines.extend(outcome.deadlines)
                    redo.seen.extend(outcome.seen)
            if redo.events:
                self._sign(redo)
                self.store.write(redo)
            replayed += len(page)
        self._log_written = replayed > 0 or self._seq > 0
        return replayed

    def _resume(self) -> bool:
        """The engine from the partition's checkpoint, when there is one to trust."""
        if self.signer is None:  # a checkpoint is trusted only with the writer's key
            return False
        found = checkpoints.resume(
            self.store, self.partition, self.signer, self._config, warn=self.warn
        )
        if found is None:
            return False
        self.engine, self._seq, self._head = found.engine, found.seq, found.head
        self._checkpoint_seq = found.seq
        return True

    def _replay_log(self, committed: int, ids: set[str] | None) -> int:
        """The whole log read once: the partition's events after the engine's position and up
        to the commit mark replayed, and (`remember_log`) the ids of every event remembered."""
        replayed = 0
        events = self.store.logged_events()
        try:
            for logged in events:
                if ids is not None:
                    ids.add(logged.event_id)  # of every partition, as `known_events` answers
                if logged.partition != self.partition or logged.seq <= self._seq:
                    continue  # another partition's, or applied already (the checkpoint)
                if logged.seq > committed:
                    if ids is None:
                        break  # the tail, replayed page by page with its outputs
                    continue
                self._replay(logged)
                replayed += 1
        finally:
            close = getattr(events, "close", None)  # a store's result stream blocks its writes
            if close is not None:
                close()
        return replayed

    def checkpoint(self) -> bool:
        """Store what is pending, then checkpoint the engine's state through the partition's
        last logged event (tracker/checkpoints.py), unless the store has that one already.
        Without a signing key there are no checkpoints. Whether one was written."""
        self.flush()
        if self.signer is None or self._seq in (0, self._checkpoint_seq):
            return False
        head: str | Callable[[], str] | None = self._head
        if head is None:  # asked now, answered once the state is numbered (`checkpoints.save`):
            # the writer process finishes the last write meanwhile
            head = self.store.event_head_later(self.partition)  # type: ignore[attr-defined]
        saved = checkpoints.save(
            self.store, self.partition, self.signer, self.engine, self._seq, head
        )
        self._head = saved.head
        self._checkpoint_seq = self._seq
        return True

    def _claim(self) -> None:
        """Once, before its first write: the store's event log is the intake's (or new)."""
        if not self._claimed:
            claim_event_log(self.store, EventLogWriter.intake())
            self._claimed = True

    def _replay(self, logged: LoggedEvent) -> Outcome:
        try:
            event = parse_event(logged.raw)
        except EventError as exc:
            raise StoreError(
                f"the event log holds an invalid event at seq {logged.seq}: {exc.reason}"
            ) from None
        if logged.seq > self._seq:
            self._seq, self._head = logged.seq, logged.chain
        return self.engine.apply(event)
