"""What applying an event returns, and what the engine remembers of each accepted event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from engine.caps import Assessment, Claim
from engine.deadlines import Tracked
from engine.notices import Notice
from schemas.ledger import DeadlineState, EntrySeen, LedgerEntry


class ConfigError(ValueError):
    """The registry and the rulebooks do not fit together."""


class Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Outcome(NamedTuple):
    """Immutable; a named tuple rather than a frozen dataclass because the engine returns one
    per event and a tuple is made in a third of the time."""

    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str
    reason: str | None = None
    entries: tuple[LedgerEntry, ...] = ()
    # every state a deadline went through while the event was applied, in version order (the
    # clock passing its due, then the event itself): the deadline history (docs/semantics.md)
    deadlines: tuple[DeadlineState, ...] = ()
    seen: tuple[EntrySeen, ...] = ()  # of the entries not seen at their effective_at


@dataclass(slots=True, eq=False)
class Record:
    """What an accepted event did, so that a retraction can undo exactly that."""

    unit: str
    type: str
    claims: list[tuple[Assessment, Claim]] | None = None  # made on first use: most events count
    notice: Notice | None = None  # the notice this event posted (or posted again)
    feedback_for: Tracked | None = None
    retracted: bool = False
