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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine.chain import event_form_digest, event_message_text, instant, link, local_instant
from engine.clock import SHANGHAI, local
from engine.core import Engine
from engine.outcome import Outcome
from schemas.envelope import UNKNOWN_RECEIPT, Envelope
from schemas.events import ClockTick, Event, EventError, parse_event
from schemas.ledger import DeadLetter, LoggedEvent, whole

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
    return logged_row(
        event, raw, partition, seq, envelope.posted_by, envelope.received_at,
        envelope.signature, previous,
    )  # fmt: skip


def logged_row(
    event: Event,
    raw: str,
    partition: int,
    seq: int,
    posted_by: str,
    received_at: datetime,
    signature: str,
    previous: str,
) -> LoggedEvent:
    """`logged_event` of an envelope given field by field (a live worker reads them from a
    record's headers and builds no envelope of them)."""
    received, received_text = receipt(received_at)
    unit = "" if isinstance(event, ClockTick) else event.unit
    return _row(
        event.event_id, unit, event.type, event.at, raw, partition, seq, posted_by, received,
        received_text, signature, previous,
    )  # fmt: skip


# An accepted event as the plain fields its event log row is made of, in this order: its id, its
# unit ("" for a tick), its type, its instant, its raw text, its seq, and its envelope's
# posted_by, received_at and signature ("": unsigned). What `tracker ingest` sends its writer
# process (sinks/writer_process.py) instead of the event and the envelope, which the writer
# does not rebuild.
EventFields = tuple[str, str, str, datetime, str, int, str, datetime, str]


def event_fields(accepted: Sequence[tuple[Event, str, int, Envelope]]) -> list[EventFields]:
    """The fields of each accepted event (with its raw text, seq and envelope), in order."""
    return [
        (
            event.event_id,
            "" if isinstance(event, ClockTick) else event.unit,
            event.type,
            event.at,
            raw,
            seq,
            envelope.posted_by,
            envelope.received_at,
            envelope.signature,
        )
        for event, raw, seq, envelope in accepted
    ]


def logged_events(
    accepted: Sequence[tuple[Event, str, int, Envelope]],
    partition: int,
    previous: str,
    sign: Callable[[list[bytes]], list[str]] | None = None,
    pause: Callable[[], None] | None = None,
) -> list[LoggedEvent]:
    """The rows of accepted events (each with its raw text, seq and envelope) in order, chained
    after `previous`: `logged_rows` of their fields."""
    return logged_rows(event_fields(accepted), partition, previous, sign, pause)


def logged_rows(
    accepted: Sequence[EventFields],
    partition: int,
    previous: str,
    sign: Callable[[list[bytes]], list[str]] | None = None,
    pause: Callable[[], None] | None = None,
) -> list[LoggedEvent]:
    """The rows of accepted events given by their fields (`EventFields`), in order, chained
    after `previous`: `logged_event` of each, those that came unsigned signed by `sign` when
    there is one (given the `event_message`s of them all, in order, at once: one batch, as
    config/intake_signatures.sign_messages signs). One pass where signing the envelopes and then
    making the rows were two: each event's receipt and its text are made once, for its message
    and its digest, and no signed envelope is built between. `pause` is called before each row
    is made (tracker/pipeline.py)."""
    receipts = [receipt(item[7]) for item in accepted]
    signatures: Iterator[str] = iter(())
    if sign is not None:
        messages = [
            event_message_text(item[4], item[6], text)
            for item, (_, text) in zip(accepted, receipts, strict=True)
            if not item[8]
        ]
        if messages:
            signatures = iter(sign(messages))
    rows = []
    for (event_id, unit, kind, at, raw, seq, posted_by, _, signature), (received, text) in zip(
        accepted, receipts, strict=True
    ):
        if pause is not None:
            pause()
        if not signature and sign is not None:
            signature = next(signatures)
        row = _row(
            event_id, unit, kind, at, raw, partition, seq, posted_by, received, text, signature,
            previous,
        )  # fmt: skip
        previous = row.chain
        rows.append(row)
    return rows


def _row(
    event_id: str,
    unit: str,
    kind: str,
    event_at: datetime,
    raw: str,
    partition: int,
    seq: int,
    posted_by: str,
    received: datetime,
    received_text: str,
    signature: str,
    previous: str,
) -> LoggedEvent:
    at = local(event_at)  # its zone is SHANGHAI, so its text is `local_instant`'s
    year = at.year  # `assessment_year(event.at)`, from the instant made local once
    digest = event_form_digest(
        event_id, partition, seq, unit, kind, local_instant(at), year, raw, posted_by,
        received_text, signature,
    )  # fmt: skip
    # built in one go, of values of the schema's types made here: no validation
    return _logged_row(
        {
            "event_id": event_id,
            "partition": partition,
            "seq": seq,
            "unit": unit,
            "type": kind,
            "at": at,
            "year": year,
            "raw": raw,
            "posted_by": posted_by,
            "received_at": received,
            "signature": signature,
            "digest": digest,
            "chain": link(previous, digest),
        }
    )


_logged_row = whole(LoggedEvent)  # every field, so its models share one fields set


# The last receipt time made a `receipt`, and what it made: the records of one request (`tracker
# serve` stamps them alike) come one after another, so a live worker makes each text once per
# request; ingest stamps each line with its own clock, so a larger cache would only miss.
_LAST_RECEIPT: list[tuple[datetime | None, datetime, str]] = [(None, UNKNOWN_RECEIPT, "")]


def receipt(at: datetime) -> tuple[datetime, str]:
    """A receipt time as the store keeps it (`stored_instant`) and its text in the canonical
    form and the signed message (`engine.chain.instant`)."""
    seen, received, text = _LAST_RECEIPT[0]
    if at is seen:
        return received, text
    # Equal instants are kept alike, whatever their offsets. Comparing two datetimes of two
    # zone objects asks both for their offsets (~0.7 us against ~0.05 for one object), so the
    # object last asked for is kept, and the next record of its request takes the line above.
    if at != seen:
        received = stored_instant(at)
        text = instant(received)
    _LAST_RECEIPT[0] = (at, received, text)
    return received, text


def stored_instant(at: datetime) -> datetime:
    """A receipt time as the store keeps it (milliseconds, +08:00), so that what a path emits is
    what a replay of the store gives back, whichever store."""
    extra = at.microsecond % 1000
    if not extra and at.tzinfo is SHANGHAI:
        return at  # already so: the common case of an envelope made by the same step
    return local(at) - timedelta(microseconds=extra)
