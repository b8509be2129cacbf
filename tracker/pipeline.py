"""The in-process tracker: raw lines -> contract check -> engine -> batched, idempotent store writes.

`tracker ingest` uses it directly; the Faust processor applies the same step (engine/step.py)
to each Kafka record.

No line stops a run: a line that is not UTF-8, not an event, rejected by the engine, or that makes
the engine raise becomes a dead letter naming its line, and the next line is read.

Every logged event and dead letter carries an envelope (schemas/envelope.py): the one the caller
passes (`tracker serve` stamps the principal and the time of the request), or by default this
tool's own: posted by `ingest:ORIGIN` (ORIGIN: the file name, or `stdin`), received at the clock
when the line is applied (docs/ingest.md). A replay of the log keeps the envelopes it logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from config.intake_signatures import sign_messages
from config.signing import Signer
from engine import Engine, Outcome, WorkCalendar
from engine.step import (
    Parsed,
    Refusal,
    apply_event,
    dead_letter,
    event_fields,
    logged_events,
)
from schemas.envelope import Envelope
from schemas.events import Event
from schemas.ledger import LoggedEvent
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import Batch, Store, UnmadeEvents
from sinks.heads import sign_heads
from tracker import checkpoints
from tracker.lines import LinesRead, Numbered, Read, ReadChunk, read_lines
from tracker.pipeline_restore import Restore
from tracker.stamp import Stamp, tool_poster

Clock = Callable[[], datetime]
BATCH_SIZE = 20_000  # records per store write: big parts for ClickHouse, bounded memory


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Summary:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "rejected": self.rejected, "duplicates": self.duplicates}


class Tracker(Restore):
    """One engine and one store; `restore()` first rebuilds the engine's state from the store
    (its checkpoint and the log after it, or the whole log: tracker/pipeline_restore.py)."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        rulebooks: Mapping[str, Rulebook],
        calendar: WorkCalendar,
        *,
        clock: Clock = wall_clock,
        batch_size: int = BATCH_SIZE,
        partition: int = 0,
        remember_log: bool = False,
        signer: Signer | None = None,
        warn: checkpoints.Warn = checkpoints.warn_stderr,
    ) -> None:
        """`remember_log`: keep the ids of the whole event log in memory (read by `restore`, and
        added to as events are logged) and ask the store no more which ids it holds. Only for
        the store's one writer (`tracker serve`'s embedded backend; chDB lets one process hold a
        store): an event another process logs meanwhile would not be seen as a duplicate. It
        costs about 100 bytes per logged event."""
        self.store = store
        # Signs the unsigned events of each write, one signature for them all (the tool is the
        # intake), and the chain heads of each write (docs/audit.md); without one, the chains
        # are written unsigned.
        self.signer = signer
        self._config = (registry, rulebooks, calendar)
        self.engine = Engine(registry, rulebooks, calendar)
        self.clock = clock
        self.batch_size = batch_size
        self.partition = partition
        self.summary = Summary()
        self._batch = Batch()
        # The events accepted since the last write, made into rows when it is written: the row
        # holds the intake signature, which signs the write's events together, and the hash
        # chain covers it.
        self._accepted: list[_Accepted] = []
        self._seq = 0
        # the chain value of the partition's last logged event; None: the store's, which made
        # the rows of the events logged last (`_unmade`)
        self._head: str | None = ""
        self._in_log: set[str] = set()  # of the ids of the lines being applied
        self._log_written = True  # whether the store's log may hold any event (restore tells)
        # What `look_up` found for several feeds to come, until the next write: the ids asked
        # for, and those of them that the log holds.
        self._looked_up: set[str] = set()
        self._looked_up_logged: set[str] = set()
        self._log_ids: set[str] | None = set() if remember_log else None
        # of each chunk read ahead whose answer is not used yet: the ids accepted since its ask
        self._since: list[set[str]] = []
        self._claimed = False  # whether this tracker checked it may write the store's event log
        self.warn = warn  # told why a checkpoint is not used (one line)
        # Called between events, as they are applied and as their rows are made: `tracker
        # serve`'s embedded applier lets its door go first here (tracker/serve/embedded.py).
        self.pause: Callable[[], None] = _no_pause
        self._checkpoint_seq = 0  # the position of the partition's latest checkpoint known

    def feed_lines(
        self,
        lines: Iterable[bytes | str] | LinesRead,
        origin: str,
        envelope: Envelope | None = None,
    ) -> Summary:
        """Lines as read from a file (bytes, as the CLI reads them) or text; numbered from 1.
        Bytes end a line at LF, CR LF or a lone CR, as a file read as text does. Each is stamped
        with `envelope`, or with this tool's (module docstring)."""
        stamp = Stamp(envelope, tool_poster(origin))
        # Each chunk is read, and its ids asked of the log, before the chunk before it is
        # applied: a store that can answers beside the engine (a writer process answers after
        # the writes sent before the ask), so no chunk waits for the writes of the last one.
        ahead: ReadChunk | None = None
        if not isinstance(lines, LinesRead):  # else some read already, in the store's waits
            lines = LinesRead(lines, origin, self.batch_size)
        for chunk in lines:
            read = self._read_ahead(chunk)
            if ahead is not None:
                self._apply_chunk(ahead, stamp)
            ahead = read
        if ahead is not None:
            self._apply_chunk(ahead, stamp)
        self.flush()
        return self.summary

    def feed(self, raw: str, origin: str, envelope: Envelope | None = None) -> None:
        """One line of text (a first line: a BOM is dropped), stamped with `envelope` or with
        this tool's (module docstring); written at the next `flush`."""
        self._feed_chunk([(origin, raw, True)], Stamp(envelope, tool_poster(origin)))

    def feed_read(
        self, lines: Sequence[tuple[str, Parsed]], origin: str, envelope: Envelope | None = None
    ) -> set[str]:
        """Lines read already (`tracker serve` reads them at its door), each with its origin
        (`ORIGIN:LINE`), applied in order as `feed_lines` applies what it reads; written at the
        next `flush`. Returns the ids among them that were logged before (the store's log and
        the batch not yet written): the duplicates of the log."""
        return self._apply_read(list(lines), Stamp(envelope, tool_poster(origin)))

    def look_up(self, ids: Iterable[str]) -> None:
        """Look the ids of several feeds to come up in the event log at once (one query rather
        than one per feed); what it finds counts until the next write."""
        wanted = sorted(set(ids) - self._looked_up)
        if self._log_written and wanted and self._log_ids is None:
            self._looked_up_logged |= self.store.known_events(wanted)
        self._looked_up.update(wanted)

    def in_log(self, event_id: str) -> bool:
        """Whether the event log (or the batch not yet written) holds the id, as remembered
        (`remember_log`; False without it). Cheap and safe to ask from another thread: a set
        look-up, and the set is only ever added to (a rebuild starts a new one)."""
        ids = self._log_ids
        return ids is not None and event_id in ids

    def _read_ahead(self, read: list[Read]) -> ReadChunk:
        """A chunk's lines as read (a refusal is a dead letter when its turn comes), and their
        ids asked of the event log, not waiting for the answer (`_apply_chunk` takes it)."""
        ids = sorted({r.event.event_id for _, r in read if isinstance(r, Parsed)})
        if self._log_ids is not None or not ids:
            return ReadChunk(read, None, set())
        # logged by the time the answer is used, and not in it: those accepted before the
        # ask but not written yet, and (`_apply`) those accepted after it
        since = {a[0].event_id for a in self._accepted}
        self._since.append(since)
        # an empty log now (a new store) holds nothing of them now
        answer = self.store.known_events_later(ids) if self._log_written else None
        return ReadChunk(read, answer, since)

    def _apply_chunk(self, chunk: ReadChunk, stamp: Stamp) -> None:
        parsed = self._refuse(chunk.lines, stamp)
        if self._log_ids is not None:
            self._apply_read(parsed, stamp)
            return
        found = chunk.since if chunk.answer is None else chunk.answer() | chunk.since
        self._since = [s for s in self._since if s is not chunk.since]
        self._apply_in_order(
            parsed, {i for _, p in parsed if (i := p.event.event_id) in found}, stamp
        )

    def _feed_chunk(self, chunk: list[Numbered], stamp: Stamp) -> None:
        self._apply_read(self._refuse(read_lines(chunk), stamp), stamp)

    def _refuse(self, read: list[Read], stamp: Stamp) -> list[tuple[str, Parsed]]:
        """Each refused line a dead letter now; the events read, in order."""
        parsed: list[tuple[str, Parsed]] = []
        for where, found in read:
            if isinstance(found, Refusal):
                self._reject(found, where, stamp.at(self.clock()))
            elif found is not None:
                parsed.append((where, found))
        return parsed

    def _apply_read(self, parsed: list[tuple[str, Parsed]], stamp: Stamp) -> set[str]:
        """Look the lines' event ids up in the log at once, then apply them in order: an event
        already in the log is a duplicate before any other check (spec 2; the engine remembers
        no tick ids and forgets the events of closed years)."""
        in_log = self._logged([p.event.event_id for _, p in parsed])
        logged_before = set(in_log)
        self._apply_in_order(parsed, in_log, stamp)
        return logged_before

    def _apply_in_order(
        self, parsed: list[tuple[str, Parsed]], in_log: set[str], stamp: Stamp
    ) -> None:
        """Apply the events in order; `in_log`: those of their ids the log holds (added to as
        events are accepted, `_apply`)."""
        self._in_log = in_log
        pause = self.pause
        for where, p in parsed:
            pause()
            self._apply(p, where, stamp)

    def _logged(self, ids: list[str]) -> set[str]:
        """Which of the ids the event log holds, counting the batch not yet written. An id
        that `look_up` asked for since the last write is not asked for again: until a write,
        only this tracker's batch can add to the log (of which it is the one writer)."""
        if self._log_ids is not None:
            return {i for i in ids if i in self._log_ids}
        pending = {a[0].event_id for a in self._accepted}
        found = {i for i in ids if i in pending or i in self._looked_up_logged}
        rest = set(ids) - found - self._looked_up
        if self._log_written and rest:
            found |= self.store.known_events(sorted(rest))
        return found

    def _apply(self, parsed: Parsed, origin: str, stamp: Stamp) -> Outcome:
        """Apply one event unless its id is already logged (see `_feed_chunk`)."""
        event = parsed.event
        if event.event_id in self._in_log:
            self.summary.duplicates += 1
            return Outcome("duplicate", event.event_id)
        now = self.clock()
        envelope = stamp.at(now)
        applied = apply_event(self.engine, event, parsed.raw, now)
        outcome = applied.outcome
        if applied.refusal is not None:
            self._reject(applied.refusal, origin, envelope)
            if applied.tainted:
                self._rebuild()
                return outcome
        elif outcome.status == "duplicate":
            self.summary.duplicates += 1
        else:
            self.summary.accepted += 1
            self._seq += 1
            self._in_log.add(event.event_id)
            if self._log_ids is not None:
                self._log_ids.add(event.event_id)
            for since in self._since:  # asked of the log before this was logged (`_read_ahead`)
                since.add(event.event_id)
            self._accepted.append((event, parsed.raw, self._seq, envelope))
            self._batch.entries.extend(outcome.entries)
            self._batch.deadlines.extend(outcome.deadlines)
            self._batch.seen.extend(outcome.seen)
        if len(self._batch) + len(self._accepted) >= self.batch_size:
            self.flush()
        return outcome

    def flush(self) -> None:
        self._looked_up.clear()  # a write adds to the log: look up afresh after it
        self._looked_up_logged.clear()
        if self._accepted and self.pause is _no_pause and _makes_event_rows(self.store):
            self._batch.unmade = self._unmade()
        else:
            self._batch.events.extend(self._logged_rows())
        if not len(self._batch):
            return
        letters = self._batch.dead_letters
        if letters:
            # a re-ingested bad line keeps its first dead letter (and its first received_at),
            # also when it comes twice before a write
            known = self.store.known_letters(sorted({d.letter_id for d in letters}))
            first = []
            for letter in letters:
                if letter.letter_id not in known:
                    known.add(letter.letter_id)
                    first.append(letter)
            self._batch.dead_letters = first
        self._claim()
        self._log_written |= bool(self._batch.events) or self._batch.unmade is not None
        self._sign(self._batch)
        self.store.write(self._batch)
        self._batch = Batch()

    def _logged_rows(self) -> list[LoggedEvent]:
        """The event log's rows of the events accepted since the last write, chained in order;
        those that came unsigned signed here as one batch (engine/step.logged_events)."""
        accepted, self._accepted = self._accepted, []
        if not accepted:
            return []
        sign = None if self.signer is None else partial(sign_messages, self.signer)
        pause = None if self.pause is _no_pause else self.pause
        previous = self._head
        if previous is None:
            previous = self.store.event_head(self.partition)  # type: ignore[attr-defined]
        rows = logged_events(accepted, self.partition, previous, sign, pause)
        self._head = rows[-1].chain
        return rows

    def _unmade(self) -> UnmadeEvents:
        """The events accepted since the last write as the fields the store makes their rows
        of (sinks/writer_events.py): the same rows as `_logged_rows`, made beside this thread."""
        accepted, self._accepted = self._accepted, []
        unmade = UnmadeEvents(self.partition, self._head, event_fields(accepted), self.signer)
        self._head = None  # the store's, from now on
        return unmade

    def _sign(self, batch: Batch) -> None:
        if self.signer is not None:
            batch.heads = sign_heads(self.signer, batch.events, batch.entries)

    def _rebuild(self) -> None:
        """The engine raised half-way through an event, so its state may hold part of that event:
        store what came before, and rebuild the engine from the log."""
        # Here, not with `restore`: every engine this tracker builds is this module's `Engine`,
        # which a test swaps for one that raises half-way (tests/unit/test_one_step.py).
        self.flush()
        self.engine = Engine(*self._config)
        self._seq, self._head = 0, ""
        self.restore()

    def _reject(self, refusal: Refusal, origin: str, envelope: Envelope) -> None:
        self.summary.rejected += 1
        self._batch.dead_letters.append(dead_letter(origin, refusal, envelope))


def _no_pause() -> None:
    pass


def _makes_event_rows(store: Store) -> bool:
    return bool(getattr(store, "makes_event_rows", False))


# An event the engine accepted, not yet made into its event log row: the event, its raw text,
# its seq and its envelope, what engine/step.logged_events takes. A plain tuple: a NamedTuple's
# Python-level constructor cost ~0.35 us more for each accepted event.
_Accepted = tuple[Event, str, int, Envelope]
