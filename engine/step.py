"""What one input record becomes, shared by `tracker ingest` and the Faust processor.

A record (a line of a file, or a Kafka record's value) is read (`read_record`), its event applied
to an engine (`apply_event`), and whatever refuses it becomes a dead letter (`dead_letter`) with
the same `raw` and `reason` on both paths; only the origin differs. What is particular to a path
stays there: ingest's duplicate check against the store's log, the processor's partition check.
Neither step raises on bad input: a failure of the parser or the engine is the record's refusal.
Both stamp what they log and reject with the record's envelope (who posted it, when it was
received: schemas/envelope.py), which each path finds in its own way.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine.chain import event_digest, link
from engine.clock import SHANGHAI, local
from engine.core import Engine
from engine.outcome import Outcome
from schemas.envelope import Envelope
from schemas.events import ClockTick, Event, EventError, parse_event
from schemas.ledger import DeadLetter, LoggedEvent, trusted

BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class Parsed:
    """An event and the text it was read from (stripped), which the event log keeps."""

    event: Event
    raw: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a record is a dead letter, and the text the dead letter keeps of it. `failure` is the
    exception behind it when the parser or the engine raised (for the log; not compared)."""

    raw: str
    reason: str
    failure: Exception | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one event did: the engine's outcome, and the refusal when it was refused."""

    outcome: Outcome
    refusal: Refusal | None = None

    @property
    def tainted(self) -> bool:
        """The engine raised part-way through the event, so it may hold part of it: it must be
        rebuilt (from the events before) before it is used again."""
        return self.refusal is not None and self.refusal.failure is not None


def read_record(data: bytes | str, *, first: bool) -> Parsed | Refusal | None:
    """The event in one record, its refusal, or None for a blank record (skipped, not rejected:
    spec section 2). `first`: the record starts its text, so a byte order mark there is dropped
    (some editors start a UTF-8 file with one); elsewhere it is content."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # nothing is lost: the dead letter keeps the bytes themselves (without the line end)
        return Refusal(
            base64.b64encode(raw.rstrip(b"\r\n")).decode("ascii"),
            f"malformed: not UTF-8 text (byte {exc.start}); raw is the line in base64",
        )
    if first:
        text = text.removeprefix(BOM)
    text = text.strip()
    if not text:
        return None
    try:
        return Parsed(parse_event(text), text)
    except EventError as exc:
        return Refusal(text, exc.reason)
    except Exception as exc:  # a parser defect is this record's, not the end of the stream
        return Refusal(text, f"cannot be read: {one_line(exc)}", exc)


def apply_event(engine: Engine, event: Event, raw: str, now: datetime | None) -> Applied:
    """`engine.apply`, with a rejection or an exception turned into the record's refusal (see
    `Applied.tainted` for what the caller owes the engine after an exception)."""
    try:
        outcome = engine.apply(event, now=now)
    except Exception as exc:
        reason = f"cannot be applied: {one_line(exc)}"
        return Applied(
            Outcome("rejected", event.event_id, reason=reason), Refusal(raw, reason, exc)
        )
    if outcome.status == "rejected":
        return Applied(outcome, Refusal(raw, outcome.reason or "rejected"))
    return Applied(outcome)


def dead_letter(origin: str, refusal: Refusal, envelope: Envelope) -> DeadLetter:
    return DeadLetter(
        letter_id=letter_id(origin, refusal.raw),
        origin=origin,
        raw=refusal.raw,
        reason=refusal.reason,
        posted_by=envelope.posted_by,
        received_at=stored_instant(envelope.received_at),
    )


def one_line(exc: BaseException) -> str:
    """An exception as a dead letter's reason: its type and the first line of its message, the
    same for the same failure (no tracebacks, no addresses), at most 300 characters."""
    text = f"{type(exc).__name__}: {exc}"
    return (text.strip().splitlines() or [type(exc).__name__])[0][:300]


def letter_id(origin: str, raw: str) -> str:
    """The same raw line from the same place is one dead letter, however often it is ingested."""
    return hashlib.sha256(f"{origin}\x1f{raw}".encode()).hexdigest()[:24]


def logged_event(
    event: Event, raw: str, partition: int, seq: int, envelope: Envelope, previous: str
) -> LoggedEvent:
    """The event log's row of an accepted event, chained after the row whose chain value is
    `previous` (the partition's last logged event; engine/chain.py)."""
    at = local(event.at)
    values = {
        "event_id": event.event_id,
        "partition": partition,
        "seq": seq,
        "unit": "" if isinstance(event, ClockTick) else event.unit,
        "type": event.type,
        "at": at,
        "year": at.year,  # `assessment_year(event.at)`, from the instant made local once
        "raw": raw,
        "posted_by": envelope.posted_by,
        "received_at": stored_instant(envelope.received_at),
        "signature": envelope.signature,
    }
    digest = values["digest"] = event_digest(values)
    values["chain"] = link(previous, digest)
    return trusted(LoggedEvent, values)


def stored_instant(at: datetime) -> datetime:
    """A receipt time as the store keeps it (milliseconds, +08:00), so that what a path emits is
    what a replay of the store gives back, whichever store."""
    extra = at.microsecond % 1000
    if not extra and at.tzinfo is SHANGHAI:
        return at  # already so: the common case of an envelope made by the same step
    return local(at) - timedelta(microseconds=extra)
