"""The store port: what the tracker writes and reads, whatever the backend.

Crash safety of a write (what `tracker ingest` relies on): `write` stores a batch table by table
in this order, each insert idempotent on deterministic ids:

1. dead letters - they cannot be derived again from anything stored, so they go first;
2. the events, appended to the event log - the write-ahead log: once an event is there, its
   outputs can always be derived again by replaying the log;
3. the ledger entries (and when each was seen) and 4. the deadline states (and their
   history) - derived from the events;
5. the signed heads of the chains the batch extends (sinks/heads.py; issue 11); a writer that
   makes the event log's rows itself (`UnmadeEvents`) writes the event chain's heads right
   after the events, which they only attest;
6. a commit mark per partition: "the outputs of every logged event up to seq N are stored".

A process that dies between any two inserts leaves logged events whose outputs may be missing,
always after the last commit mark; the next `Tracker.restore()` replays the log, derives the
outputs of exactly those events again and writes them (the replacing tables absorb what was
already there), then writes the mark.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from schemas.ledger import (
    ChainHead,
    DeadLetter,
    DeadlineState,
    EntrySeen,
    LedgerEntry,
    LoggedEvent,
)
from schemas.registry import Registry
from schemas.rulebook import Rulebook

# defined in sinks/errors.py (light to import) and known here by their old names too
from sinks.errors import HISTORY_MISSING as HISTORY_MISSING
from sinks.errors import HistoryMissingError as HistoryMissingError
from sinks.errors import StoreError as StoreError

if TYPE_CHECKING:
    from config.signing import Signer
    from engine.step import EventFields
    from sinks.checkpoint import Checkpoint
    from sinks.event_log import EventLogWriter


@dataclass(frozen=True, slots=True)
class UnmadeEvents:
    """The event log's rows of a write as the fields they are made of (engine/step.py
    `EventFields`), for a store that makes them where it stores them (`makes_event_rows`:
    `tracker ingest`'s writer process, sinks/writer_process.py): the same rows, their intake
    signatures (with `signer`) and the event chain's signed head, made beside the engine
    instead of on its thread. `previous`: the chain value before the first, or None for the
    one the store's last unmade events of the partition ended at."""

    partition: int
    previous: str | None
    fields: list[EventFields]
    signer: Signer | None

    @property
    def through_seq(self) -> int:
        return self.fields[-1][5]  # the fields come in order of seq


@dataclass
class Batch:
    events: list[LoggedEvent] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)
    deadlines: list[DeadlineState] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # when the entries not seen at their effective_at were (engine.outcome.seen_times); written
    # with the ledger, and the deadlines (every state, not only the latest) to their history
    seen: list[EntrySeen] = field(default_factory=list)
    # signed by the writer (sinks/heads.py); not counted in len(): they only attest the rest
    heads: list[ChainHead] = field(default_factory=list)
    # events whose rows the store makes (`UnmadeEvents`); written before `events`
    unmade: UnmadeEvents | None = None

    def __len__(self) -> int:
        return self.logged + len(self.entries) + len(self.deadlines) + len(self.dead_letters)

    @property
    def logged(self) -> int:
        """The number of the batch's events, made and unmade."""
        return len(self.events) + (0 if self.unmade is None else len(self.unmade.fields))

    def commit_marks(self) -> dict[int, int]:
        """Per partition, the highest seq of the batch's events: what the batch commits."""
        marks: dict[int, int] = {}
        if self.unmade is not None and self.unmade.fields:
            marks[self.unmade.partition] = self.unmade.through_seq
        for e in self.events:
            if e.seq > marks.get(e.partition, -1):
                marks[e.partition] = e.seq
        return marks


@dataclass(frozen=True, slots=True)
class RegistryChange:
    """One change of the registry recorded in a store (the first save counts, from "")."""

    changed_at: datetime
    old_hash: str
    new_hash: str
    registry: str  # the new registry, as JSON


def registry_hash(registry_json: str) -> str:
    return hashlib.sha256(registry_json.encode()).hexdigest()[:16]


class AsOfView(Protocol):
    """A store's outputs as the tracker showed them at event time `at`."""

    @property
    def at(self) -> datetime: ...

    def ledger(self, unit: str | None = None, year: int | None = None) -> list[LedgerEntry]: ...

    def deadlines(
        self, unit: str | None = None, year: int | None = None
    ) -> list[DeadlineState]: ...

    def totals(
        self, unit: str | None = None, year: int | None = None
    ) -> dict[tuple[str, int, str], Decimal]: ...

    def event_unit_years(
        self, unit: str | None = None, year: int | None = None
    ) -> set[tuple[str, int]]: ...


class StoreReader(Protocol):
    """What reading commands, the web views and dashboards need: the recorded configuration and
    the derived tables. A worker-served store (`sinks.remote`) implements this half only."""

    def load_config(self) -> tuple[Registry, dict[str, Rulebook]] | None: ...

    def ledger(self, unit: str | None = None, year: int | None = None) -> list[LedgerEntry]: ...

    def deadlines(
        self, unit: str | None = None, year: int | None = None
    ) -> list[DeadlineState]: ...

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]: ...

    def posters(self, event_ids: Sequence[str]) -> dict[str, tuple[str, datetime]]:
        """Who posted each of the logged events among `event_ids`, and when it was received
        (`LoggedEvent.posted_by`, `.received_at`): the provenance of a ledger entry's events.
        Ids not in the log are left out."""
        ...

    def totals(self) -> dict[tuple[str, int, str], Decimal]: ...

    def event_unit_years(self) -> set[tuple[str, int]]: ...

    def watermark(self) -> datetime | None: ...

    def as_of(self, at: datetime) -> AsOfView:
        """The outputs as the tracker showed them at event time `at` (sinks/as_of.py); a
        HistoryMissingError when the store cannot tell."""
        ...

    def close(self) -> None: ...


class StoreWriter(Protocol):
    """What ingest, the sink agent and crash recovery need. Every write is idempotent: writing
    the same batch twice changes nothing."""

    def save_config(self, registry: Registry, rulebooks: Mapping[str, Rulebook]) -> None: ...

    def write(self, batch: Batch) -> None: ...

    def logged_events(self) -> Iterator[LoggedEvent]: ...

    def next_seq(self, partition: int = 0) -> int: ...

    def known_letters(self, letter_ids: Sequence[str]) -> set[str]:
        """Those of the dead-letter ids that are stored."""
        ...

    def committed_seq(self, partition: int = 0) -> int:
        """The seq through which the outputs of the partition's logged events are all stored."""
        ...

    def registry_changes(self) -> list[RegistryChange]:
        """Every registry change that `save_config` recorded, oldest first."""
        ...

    def known_events(self, event_ids: Sequence[str]) -> set[str]:
        """Those of the ids that are in the event log (of any partition)."""
        ...

    def logged_ids(self) -> Iterator[str]:
        """The id of every event in the event log (of any partition), in no set order, an id
        possibly more than once; streamed, like `logged_events`, but without the events' rows."""
        ...

    def known_events_later(self, event_ids: Sequence[str]) -> Callable[[], set[str]]:
        """`known_events`, asked now and answered when the function it returns is called: the
        answer holds every id logged before the ask, and may hold some logged after it (the
        caller adds what it logged itself meanwhile). A store that can answers beside the
        caller's work (a writer process); an error is raised by the function."""
        ...

    def logged_events_after(self, partition: int, seq: int, limit: int) -> list[LoggedEvent]:
        """Up to `limit` logged events of the partition with a higher seq, in seq order."""
        ...

    def chain_heads(self) -> list[ChainHead]:
        """Every signed chain head stored, by chain, key and `through_seq`."""
        ...

    def predates_chains(self) -> bool:
        """Whether the store holds events or entries written before hash chains (issue 11)."""
        ...

    def identity(self) -> dict[str, str | None]:
        """Which store this is: its id and its DSN (password masked)."""
        ...

    def event_log_writer(self) -> EventLogWriter | None:
        """Which writer owns the event log (sinks/event_log.py); None: none recorded yet."""
        ...

    def record_event_log_writer(self, writer: EventLogWriter) -> None: ...

    def logged_through(self) -> dict[int, int]:
        """Per partition the event log holds events in (its keys: those partitions), the
        highest seq logged there."""
        ...

    def save_checkpoint_parts(
        self, partition: int, through_seq: int, write: str, parts: Iterable[bytes]
    ) -> None:
        """Store a checkpoint's text, part by part in order (sinks/checkpoint.py), reading the
        parts as it writes them: a few at a time, never all at once. Its row comes after."""
        ...

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Keep the checkpoint (sinks/checkpoint.py) as its partition's one: the partition's
        others are dropped, and their parts. Written only after the rows it covers are stored
        and its own parts."""
        ...

    def load_checkpoint_parts(self, partition: int, through_seq: int, write: str) -> list[bytes]:
        """A checkpoint's parts in order, as stored: untrusted."""
        ...

    def load_checkpoint(self, partition: int = 0) -> Checkpoint | None:
        """The partition's checkpoint of the highest `through_seq`, as stored: untrusted
        (sinks/checkpoint.py `trusted` checks it)."""
        ...

    def close(self) -> None: ...


class Store(StoreReader, StoreWriter, Protocol):
    """A store opened on its backend (chDB, a ClickHouse server, memory): both halves."""
