"""What one input record becomes, shared by `tracker ingest` and the Faust processor."""

from __future__ import annotations

import hashlib

from engine.clock import assessment_year, local
from schemas.events import ClockTick, Event
from schemas.ledger import LoggedEvent, trusted


def letter_id(origin: str, raw: str) -> str:
    """The same raw line from the same place is one dead letter, however often it is ingested."""
    return hashlib.sha256(f"{origin}\x1f{raw}".encode()).hexdigest()[:24]


def logged_event(event: Event, raw: str, partition: int, seq: int) -> LoggedEvent:
    return trusted(
        LoggedEvent,
        {
            "event_id": event.event_id,
            "partition": partition,
            "seq": seq,
            "unit": "" if isinstance(event, ClockTick) else event.unit,
            "type": event.type,
            "at": local(event.at),
            "year": assessment_year(event.at),
            "raw": raw,
        },
    )
