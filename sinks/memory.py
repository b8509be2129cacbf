"""An in-memory store with the same contract as ClickHouse, for unit tests and replay diffs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

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
from sinks.as_of import RowsAsOf
from sinks.base import Batch, RegistryChange, registry_hash
from sinks.checkpoint import Checkpoint, write_of
from sinks.event_log import EventLogWriter
from sinks.faulty import before_write


class MemoryStore:
    def __init__(self) -> None:
        self._id = uuid4().hex
        self._config: tuple[Registry, dict[str, Rulebook]] | None = None
        # by (partition, event_id), as the ClickHouse table: a tick is logged in every partition
        self._events: dict[tuple[int, str], LoggedEvent] = {}
        self._ids: dict[str, LoggedEvent] = {}
        self._entries: dict[str, LedgerEntry] = {}
        # the totals kept as ClickHouse keeps them (sinks/clickhouse_totals.py), so that the
        # contract tests hold both stores to it: keyed rows a rewrite replaces, and a minimum
        self._points: dict[tuple[str, int, str, str], Decimal] = {}
        self._unit_years: dict[tuple[str, int], datetime] = {}
        self._deadlines: dict[tuple[str, str, str], DeadlineState] = {}
        self._history: dict[tuple[str, str, str, int], DeadlineState] = {}
        self._seen: dict[str, EntrySeen] = {}
        self._letters: dict[str, DeadLetter] = {}
        self._committed: dict[int, int] = {}
        self._changes: list[RegistryChange] = []
        self._heads: dict[tuple[str, str, int], ChainHead] = {}
        self._log_writer: EventLogWriter | None = None
        self._checkpoints: dict[int, Checkpoint] = {}
        self._checkpoint_parts: dict[tuple[int, int, str], list[bytes]] = {}

    def save_config(self, registry: Registry, rulebooks: Mapping[str, Rulebook]) -> None:
        before_write("config")
        new = registry.model_dump_json()
        old = self._config[0].model_dump_json() if self._config else ""
        if new != old:
            self._changes.append(
                RegistryChange(
                    datetime.now(UTC), registry_hash(old) if old else "", registry_hash(new), new
                )
            )
        self._config = (registry, dict(rulebooks))

    def event_log_writer(self) -> EventLogWriter | None:
        return self._log_writer

    def record_event_log_writer(self, writer: EventLogWriter) -> None:
        self._log_writer = writer

    def logged_through(self) -> dict[int, int]:
        through: dict[int, int] = {}
        for e in self._events.values():
            through[e.partition] = max(e.seq, through.get(e.partition, e.seq))
        return through

    def registry_changes(self) -> list[RegistryChange]:
        return list(self._changes)

    def load_config(self) -> tuple[Registry, dict[str, Rulebook]] | None:
        return self._config

    def identity(self) -> dict[str, str | None]:
        return {"store_id": self._id, "dsn": "memory://"}

    def write(self, batch: Batch) -> None:
        """In the order of `sinks.base`, one "insert" per table as in ClickHouse, so that a write
        drill can strike between any two of them."""
        if batch.dead_letters:
            before_write("dead_letters")
            for letter in batch.dead_letters:
                self._letters.setdefault(letter.letter_id, letter)
        if batch.events:
            before_write("events")
            for e in batch.events:
                self._events.setdefault((e.partition, e.event_id), e)
                self._ids.setdefault(e.event_id, e)
            before_write("unit_years")
            for e in batch.events:
                if e.unit:
                    first = self._unit_years.get((e.unit, e.year))
                    if first is None or e.at < first:
                        self._unit_years[(e.unit, e.year)] = e.at
        if batch.entries:
            before_write("ledger")
            for entry in batch.entries:
                self._entries.setdefault(entry.entry_id, entry)
            before_write("ledger_points")
            for entry in batch.entries:
                where = (entry.unit, entry.year, entry.indicator)
                self._points[(*where, "")] = Decimal(0)
                if entry.applied:
                    self._points[(*where, entry.entry_id)] = entry.applied
        if batch.seen:
            before_write("ledger_seen")
            for seen in batch.seen:
                self._seen.setdefault(seen.entry_id, seen)
        if batch.deadlines:
            before_write("deadline_history")
            for d in batch.deadlines:
                self._history.setdefault((d.unit, d.kind, d.ref, d.version), d)
            before_write("deadlines")
            for d in batch.deadlines:
                key = (d.unit, d.kind, d.ref)
                old = self._deadlines.get(key)
                if old is None or d.version >= old.version:
                    self._deadlines[key] = d
        if batch.heads:
            before_write("chain_heads")
            for h in batch.heads:
                self._heads[(h.chain, h.key, h.through_seq)] = h
        marks = batch.commit_marks()
        if marks:
            before_write("batches")
            for partition, seq in marks.items():
                self._committed[partition] = max(seq, self._committed.get(partition, 0))

    def save_checkpoint_parts(
        self, partition: int, through_seq: int, write: str, parts: Iterable[bytes]
    ) -> None:
        before_write("checkpoint_parts")
        self._checkpoint_parts[(partition, through_seq, write)] = list(parts)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        before_write("checkpoints")
        self._checkpoints[checkpoint.partition] = checkpoint
        keep = (checkpoint.partition, checkpoint.through_seq, write_of(checkpoint))
        for key in [k for k in self._checkpoint_parts if k[0] == checkpoint.partition]:
            if key != keep:
                del self._checkpoint_parts[key]  # another checkpoint's

    def load_checkpoint_parts(self, partition: int, through_seq: int, write: str) -> list[bytes]:
        return list(self._checkpoint_parts.get((partition, through_seq, write), []))

    def load_checkpoint(self, partition: int = 0) -> Checkpoint | None:
        return self._checkpoints.get(partition)

    def committed_seq(self, partition: int = 0) -> int:
        return self._committed.get(partition, 0)

    def logged_events(self) -> Iterator[LoggedEvent]:
        yield from sorted(self._events.values(), key=lambda e: (e.partition, e.seq))

    def known_events(self, event_ids: Sequence[str]) -> set[str]:
        return {i for i in event_ids if i in self._ids}

    def logged_ids(self) -> Iterator[str]:
        yield from tuple(self._ids)

    def known_events_later(self, event_ids: Sequence[str]) -> Callable[[], set[str]]:
        asked = self.known_events(event_ids)  # the log as it is now, as the protocol says
        return asked.copy

    def logged_events_after(self, partition: int, seq: int, limit: int) -> list[LoggedEvent]:
        rows = [e for e in self._events.values() if e.partition == partition and e.seq > seq]
        return sorted(rows, key=lambda e: e.seq)[:limit]

    def chain_heads(self) -> list[ChainHead]:
        return [self._heads[k] for k in sorted(self._heads)]

    def predates_chains(self) -> bool:
        return any(not e.chain for e in self._events.values()) or any(
            not e.chain for e in self._entries.values()
        )

    def next_seq(self, partition: int = 0) -> int:
        return 1 + max(
            (e.seq for e in self._events.values() if e.partition == partition), default=0
        )

    def ledger(self, unit: str | None = None, year: int | None = None) -> list[LedgerEntry]:
        rows = [
            e
            for e in self._entries.values()
            if (unit is None or e.unit == unit) and (year is None or e.year == year)
        ]
        return sorted(rows, key=lambda e: (e.unit, e.year, e.seq))

    def deadlines(self, unit: str | None = None, year: int | None = None) -> list[DeadlineState]:
        rows = [
            d
            for d in self._deadlines.values()
            if (unit is None or d.unit == unit) and (year is None or d.year == year)
        ]
        return sorted(rows, key=lambda d: (d.unit, d.kind, d.ref))

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        rows = sorted(self._letters.values(), key=lambda d: (d.received_at, d.letter_id))
        return rows[-limit:] if limit else rows

    def posters(self, event_ids: Sequence[str]) -> dict[str, tuple[str, datetime]]:
        return {
            i: (e.posted_by, e.received_at)
            for i in event_ids
            if (e := self._ids.get(i)) is not None
        }

    def known_letters(self, letter_ids: Sequence[str]) -> set[str]:
        return {i for i in letter_ids if i in self._letters}

    def totals(self) -> dict[tuple[str, int, str], Decimal]:
        out: dict[tuple[str, int, str], Decimal] = {}
        for (unit, year, indicator, _), applied in self._points.items():
            key = (unit, year, indicator)
            out[key] = out.get(key, Decimal(0)) + applied
        return out

    def event_unit_years(self) -> set[tuple[str, int]]:
        return set(self._unit_years)

    def watermark(self) -> datetime | None:
        return max((e.at for e in self._events.values()), default=None)

    def as_of(self, at: datetime) -> RowsAsOf:
        first: dict[tuple[str, int], datetime] = {}
        for e in self._events.values():
            if e.unit and ((e.unit, e.year) not in first or e.at < first[(e.unit, e.year)]):
                first[(e.unit, e.year)] = e.at
        return RowsAsOf(
            at=at,
            entries=tuple(self._entries.values()),
            seen=dict(self._seen),
            history=tuple(self._history.values()),
            unit_years=first,
        )

    def close(self) -> None:
        pass
