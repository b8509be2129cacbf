"""Who posted an event and when it was received: envelope metadata, outside the event body.

The body is the contract's event (section 2) and is never changed; the envelope travels beside
it - as Kafka record headers on the events topic, as columns of the event log and the dead letters -
so that an auditor sees who posted what and when, and a replay of the log reproduces it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

HEADER_POSTED_BY = "tracker-posted-by"
HEADER_RECEIVED_AT = "tracker-received-at"
# What records that reached the events topic without an envelope (direct produce by an
# operator's tool, or records from before envelopes existed) are attributed to.
UNKNOWN_POSTER = ""


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    # A principal id as `tracker principals` names it (e.g. "centre:fj", "unit:fj.gat"), or a
    # tool's own name ("ingest:FILE", "ticker").
    posted_by: str = Field(max_length=200)
    received_at: AwareDatetime

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (HEADER_POSTED_BY, self.posted_by.encode()),
            (HEADER_RECEIVED_AT, self.received_at.isoformat().encode()),
        ]


def from_headers(headers: Iterable[tuple[str, bytes]] | None) -> Envelope | None:
    """The envelope a Kafka record carries, or None when it carries none (or a broken one:
    headers are untrusted input like the body)."""
    found = {k: v for k, v in headers or () if k in (HEADER_POSTED_BY, HEADER_RECEIVED_AT)}
    if len(found) != 2:
        return None
    try:
        return Envelope(
            posted_by=found[HEADER_POSTED_BY].decode(),
            received_at=datetime.fromisoformat(found[HEADER_RECEIVED_AT].decode()),
        )
    except (UnicodeDecodeError, ValueError, ValidationError):
        return None
