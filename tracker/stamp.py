"""The envelope `tracker ingest` stamps on each line it reads when its caller gives none: posted
by the tool and its input, received at the line's own clock reading (docs/ingest.md, "Who
posted what"), as the store keeps it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from engine.step import stored_instant
from schemas.envelope import Envelope
from schemas.ledger import trusted


def tool_poster(origin: str) -> str:
    """Who posted what `tracker ingest` reads, when the caller names no one: the tool and its
    input. Ingest is an operator's tool reading a file; its principal is not known here."""
    return f"ingest:{origin}"


class Stamp:
    """The envelope of the lines of one call: the caller's, or the tool's with the clock of each
    line (the instant the engine judges the line by, e.g. its 10-minutes-ahead check)."""

    __slots__ = ("_last", "envelope", "poster")

    def __init__(self, envelope: Envelope | None, poster: str) -> None:
        self.envelope = envelope
        self.poster = poster
        # The tool's last envelope and the millisecond it stands for (its first instant, in the
        # clock reading's own fixed-offset zone): the store keeps milliseconds, and ingest reads
        # its clock once a line, a dozen lines or more a millisecond, so most lines share one.
        self._last: tuple[datetime, Envelope] | None = None

    def at(self, now: datetime) -> Envelope:
        if self.envelope is not None:
            return self.envelope
        last = self._last
        if last is not None:
            start = last[0]
            # one zone object on both sides: compared field by field, never converted
            if (
                now.tzinfo is start.tzinfo
                and type(now) is datetime
                and start <= now
                and now - start < _MILLISECOND
            ):
                return last[1]
        # built per millisecond: skip the validation of values this tool made itself
        envelope = trusted(
            Envelope,
            {"posted_by": self.poster, "received_at": stored_instant(now), "signature": ""},
        )
        # Only a reading of a datetime in a fixed-offset zone (the wall clock's UTC) is kept:
        # in it, the readings of one millisecond have one stored instant (`stored_instant`
        # drops the microseconds below the millisecond, in the reading's own zone).
        if type(now) is datetime and type(now.tzinfo) is timezone:
            self._last = (now.replace(microsecond=now.microsecond // 1000 * 1000), envelope)
        return envelope


_MILLISECOND = timedelta(milliseconds=1)
