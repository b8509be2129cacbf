"""What applying an event returns, and what the engine remembers of each accepted event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from engine.caps import Assessment, Claim
from engine.clock import local
from engine.deadlines import Tracked
from engine.notices import Notice
from schemas.ledger import DeadlineState, EntrySeen, LedgerEntry, trusted_seen


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
    claims: tuple[tuple[Assessment, Claim], ...] | None = None  # None: it counted nothing
    notice: Notice | None = None  # the notice this event posted (or posted again)
    feedback_for: Tracked | None = None
    retracted: bool = False


def accepted(
    event_id: str,
    entries: tuple[LedgerEntry, ...],
    deadlines: tuple[DeadlineState, ...],
    expired: int,
    at: datetime,
) -> Outcome:
    """The outcome of an accepted event applied `at` that changed something: the first
    `expired` entries are the overdue deductions of the deadlines the clock passed on its way
    to `at`, the rest the event's own. Made without the named tuple's `__new__` (a Python
    function), one per event; an event whose one entry is dated at its own instant (the same
    object: the engine dates them so) is seen then, and `seen_times` has nothing to say of it."""
    if not expired and len(entries) == 1 and entries[0].effective_at is at:
        seen: tuple[EntrySeen, ...] = ()
    else:
        seen = seen_times(entries, expired, at)
    return new_tuple(Outcome, ("accepted", event_id, None, entries, deadlines, seen))


new_tuple = tuple.__new__  # an `Outcome` without the named tuple's `__new__` (a Python function)


def seen_times(
    entries: tuple[LedgerEntry, ...], expired: int, at: datetime
) -> tuple[EntrySeen, ...]:
    """When in event time each entry entered the ledger, for those not at their effective_at
    (schemas.ledger.EntrySeen): what an as-of reader needs to cut the ledger at an instant."""
    out = []
    for i, entry in enumerate(entries):
        if i < expired:  # dated at the due instant the clock passed: seen only after it
            seen, after = entry.effective_at, True
        elif entry.effective_at != at:  # re-issued, or an overdue deduction the event opened
            seen, after = local(at), False
        else:
            continue
        out.append(
            trusted_seen(
                {
                    "entry_id": entry.entry_id,
                    "unit": entry.unit,
                    "year": entry.year,
                    "seen_at": seen,
                    "after": after,
                },
            )
        )
    return tuple(out)
