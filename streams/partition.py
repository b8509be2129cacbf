"""One input partition of the processor: its engine, its warnings, the last offset applied, and
what applying one record makes (streams/processor.py rebuilds and feeds it).

A record is read and applied by the step `tracker ingest` uses (engine/step.py), so the same
input makes the same dead letter on both paths; a record is a whole text (a leading byte order
mark is dropped, as on a file's first line).

Who posted a record and when it was received come from its headers (schemas/envelope.py: the
intake stamps them); a record without a usable envelope is posted by no one (`UNKNOWN_POSTER`)
and was received when the broker appended it. The envelope is part of the record, so a rebuild
re-emits it too; it never makes a record a dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

from engine import Engine
from engine.step import (
    Parsed,
    Refusal,
    apply_event,
    dead_letter,
    logged_event,
    logged_row,
    one_line,
    read_record,
)
from engine.warnings import DeadlineWarning, Warner, WarningPolicy
from schemas.envelope import (
    UNKNOWN_POSTER,
    UNKNOWN_RECEIPT,
    Envelope,
    from_headers,
    header_parts,
)
from schemas.events import ClockTick
from schemas.ledger import (
    DeadLetter,
    DeadlineState,
    EntrySeen,
    LedgerEntry,
    LoggedEvent,
    trusted,
)
from sinks.base import Batch
from sinks.heads import intake_signed
from streams.settings import Config
from streams.topics import partition_for

log = logging.getLogger("streams.processor")  # the name operators filter the processor's lines by

# Ticks read, shared by the partitions of one processor (`PartitionState.ticks`): how many are
# kept. A tick's copies are read within a batch or two of each other in every partition.
TICKS_KEPT = 1_024
_TICK = b"clock.tick"  # in every tick's value; a value without it is never looked up


class RebuildError(RuntimeError):
    """A partition's engine cannot be rebuilt (its input records are gone)."""


Headers = Sequence[tuple[str, bytes | None]]  # a Kafka record's headers, as aiokafka gives them


class Record(NamedTuple):
    """What the processor needs of one input record (a tuple: made per record read, it costs
    ~1 us less than a frozen dataclass)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    value: bytes | None
    headers: Headers | None = None

    def envelope(self) -> Envelope:
        """Who posted the record and when it was received (module docstring)."""
        found = from_headers(self.headers)
        if found is not None:
            return found
        received = stamp(self.timestamp_ms) or UNKNOWN_RECEIPT
        return trusted(
            Envelope, {"posted_by": UNKNOWN_POSTER, "received_at": received, "signature": ""}
        )


@dataclass(slots=True)
class Outputs:
    logged: LoggedEvent | None = None
    entries: tuple[LedgerEntry, ...] = ()
    deadlines: tuple[DeadlineState, ...] = ()
    seen: tuple[EntrySeen, ...] = ()
    letter: DeadLetter | None = None
    warnings: list[DeadlineWarning] = field(default_factory=list)

    def rows_into(self, batch: Batch) -> None:
        """Add this record's rows to a store write (its warnings go to the warnings topic)."""
        if self.logged is not None:
            batch.events.append(self.logged)
        batch.entries.extend(self.entries)
        batch.seen.extend(self.seen)
        batch.deadlines.extend(self.deadlines)
        if self.letter is not None:
            batch.dead_letters.append(self.letter)


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a rebuild may start instead of offset 0: the engine state after the partition's
    records through offset `seq` (a logged event, whose chain value is `head`)."""

    seq: int
    head: str
    engine: Callable[[], Engine]  # a fresh engine in that state at every call


# (partition, before) -> a trusted start with seq < before, or None: replay from offset 0
Resumer = Callable[[int, int], Awaitable[Resume | None]]


class PartitionState:
    """The engine and the warning tracker of one input partition, and the last offset applied.

    `failed` maps the offsets of records whose application failed after the engine had started
    on them to their dead letters: such a record is not applied again, so a state rebuilt with
    it is that of the partition without those records. After a new failure `tainted` is set:
    the engine may hold part of that record, and must be rebuilt before it is used again."""

    def __init__(
        self,
        config: Config,
        partition: int,
        partitions: int,
        policy: WarningPolicy,
        failed: dict[int, Outputs] | None = None,
        homes: dict[str, int | None] | None = None,
        resume: Resume | None = None,
        ticks: dict[bytes, Parsed] | None = None,
    ) -> None:
        self.engine = (
            Engine(config.registry, config.rulebooks, config.calendar)
            if resume is None
            else resume.engine()
        )
        # unit -> the partition its root hashes to (None: not in the registry); shared by the
        # states of one processor, whose registry and partition count never change
        self.homes: dict[str, int | None] = {} if homes is None else homes
        # A tick is copied to every partition (streams/post.py, streams/ticker.py): its value ->
        # what reading it gave, so that one worker parses it once, not once per partition.
        # Reading is a pure function of the bytes and its result is immutable, so sharing it
        # changes no output.
        self.ticks: dict[bytes, Parsed] = {} if ticks is None else ticks
        self.signer = config.signer
        self.head = ""  # the chain value of the partition's last logged event (engine/chain.py)
        self.warner = Warner(config.calendar, policy)
        self.partition = partition
        self.partitions = partitions
        self.offset = -1
        self.logged = -1  # the offset of the last record logged (a checkpoint's position)
        if resume is not None:
            self.head, self.offset, self.logged = resume.head, resume.seq, resume.seq
            # The warner holds no state of its own worth saving: open deadlines and the
            # instants not reached yet, which the engine's open deadlines and watermark give
            # back. Their warnings up to the watermark were produced before the checkpoint.
            self.warner.feed(self.engine.open_deadlines(), self.engine.watermark)
        self.failed: dict[int, Outputs] = {} if failed is None else failed
        self.tainted = False
        self._engaged = False

    def apply(self, rec: Record) -> Outputs:
        """The outputs of one record; never raises (any failure is the record's dead letter)."""
        self.offset = rec.offset
        known = self.failed.get(rec.offset)
        if known is not None:
            return known
        self._engaged = False
        read = self._read(rec.value or b"")
        if read is None:
            return Outputs()  # blank records are skipped, not rejected (spec section 2)
        if isinstance(read, Refusal):
            return self._refuse(rec, read)
        try:
            return self._apply(rec, read)
        except Exception as exc:  # making its outputs failed: the record's, not the partition's
            return self._refuse(rec, Refusal(read.raw, f"cannot be applied: {one_line(exc)}", exc))

    def _read(self, value: bytes) -> Parsed | Refusal | None:
        """`read_record`, once per tick for all the partitions (`ticks`)."""
        if _TICK not in value:
            return read_record(value, first=True)
        ticks = self.ticks
        known = ticks.get(value)
        if known is not None:
            return known
        read = read_record(value, first=True)
        if isinstance(read, Parsed) and isinstance(read.event, ClockTick):
            if len(ticks) >= TICKS_KEPT:
                del ticks[next(iter(ticks))]  # the oldest
            ticks[value] = read
        return read

    def _apply(self, rec: Record, read: Parsed) -> Outputs:
        event = read.event
        if not isinstance(event, ClockTick):
            misplaced = self._misplaced(event.unit)
            if misplaced:
                return self._refuse(rec, Refusal(read.raw, misplaced))
        self._engaged = True  # from here on a failure may leave the engine changed
        applied = apply_event(self.engine, event, read.raw, stamp(rec.timestamp_ms))
        if applied.refusal is not None:
            return self._refuse(rec, applied.refusal)
        if applied.outcome.status == "duplicate":
            return Outputs()
        logged = self._logged(rec, read)
        self.head, self.logged = logged.chain, rec.offset
        return Outputs(
            logged=logged,
            entries=applied.outcome.entries,
            deadlines=applied.outcome.deadlines,
            seen=applied.outcome.seen,
            warnings=self.warner.feed(applied.outcome.deadlines, self.engine.watermark),
        )

    def _logged(self, rec: Record, read: Parsed) -> LoggedEvent:
        """The record's event log row. A record whose headers carry an envelope that is logged
        as it came (signed, or no key to sign with: `intake_signed`) is logged from the headers'
        fields, without an envelope built for it (the throughput path: `tracker serve` signed
        it); any other is stamped and signed here first."""
        parts = header_parts(rec.headers)
        if parts is not None and (parts[1] or self.signer is None):
            base, signature = parts
            return logged_row(
                read.event, read.raw, self.partition, rec.offset, base.posted_by,
                base.received_at, signature, self.head,
            )  # fmt: skip
        # the headers' unsigned envelope as read above (what `rec.envelope()` would read again)
        envelope = parts[0] if parts is not None else rec.envelope()
        envelope = intake_signed(self.signer, envelope, read.raw)
        return logged_event(read.event, read.raw, self.partition, rec.offset, envelope, self.head)

    def _misplaced(self, unit: str) -> str | None:
        """Jurisdiction roll-up needs every event of a root unit's subtree in one partition."""
        try:
            expected = self.homes[unit]
        except KeyError:
            expected = self.homes[unit] = self._home(unit)
        if expected is None or expected == self.partition:
            return None  # an unknown unit is the engine's to reject
        root = self.engine.registry.root(unit)
        return (
            f"record in partition {self.partition}, but unit {unit} belongs to partition "
            f"{expected}: produce it with key {root!r} (its root unit), as `tracker post` does"
        )

    def _home(self, unit: str) -> int | None:
        registry = self.engine.registry
        if registry.unit(unit) is None:
            return None
        return partition_for(registry.root(unit), self.partitions)

    def _refuse(self, rec: Record, refusal: Refusal) -> Outputs:
        """The record's dead letter. After a failure once the engine had started on the record,
        the engine must be rebuilt without it (`tainted`), and every rebuild skips it (`failed`)."""
        origin = f"kafka:{rec.topic}/{rec.partition}/{rec.offset}"
        out = Outputs(letter=dead_letter(origin, refusal, rec.envelope()))
        if refusal.failure is not None:
            log.error(
                "%s/%d/%d: %s; the record is a dead letter",
                rec.topic,
                rec.partition,
                rec.offset,
                refusal.reason,
                exc_info=refusal.failure,
            )
            if self._engaged:
                self.tainted = True
                self.failed[rec.offset] = out
        return out


def header_pairs(headers: Headers | Mapping[str, bytes | None] | None) -> Headers | None:
    """A consumed message's headers as the (name, value) pairs a `Record` keeps: aiokafka gives
    pairs, Faust also allows a mapping."""
    if isinstance(headers, Mapping):
        return list(headers.items())
    return headers


@lru_cache(maxsize=1024)  # a produce batch's records share the broker's append time
def stamp(timestamp_ms: int | None) -> datetime | None:
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):  # not a broker's timestamp
        return None
