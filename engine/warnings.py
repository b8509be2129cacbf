"""Deadline warnings: `deadline.approaching` before a notice falls due, `deadline.overdue` when it
does (issue 3, item 6).

Pure (standard library, engine and schemas only): the processor feeds it every deadline change
and the partition's watermark after each event, so replaying the same events gives the same
warnings with the same ids. The set of warnings depends on event-time facts only, not on how
often ticks arrive: `approaching` for a lead is emitted when the deadline was still open at the
instant `due - lead` (it was noticed before that instant and closed after it), as soon as the
watermark reaches that instant or the deadline closes, whichever comes first.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Literal

from engine.calendar import CalendarError, WorkCalendar
from engine.clock import SHANGHAI, iso, local
from schemas.ledger import DeadlineState

WarningType = Literal["deadline.approaching", "deadline.overdue"]
_Key = tuple[str, str, str]  # unit, kind, ref


@dataclass(frozen=True, slots=True)
class DeadlineWarning:
    warning_id: str
    type: WarningType
    unit: str
    kind: str
    ref: str
    due: datetime
    lead: str | None  # "3d", "1d", "3wd", "1wd"; None for deadline.overdue
    at: datetime  # the warning instant: due - lead, or due for overdue

    def as_json(self) -> dict[str, Any]:
        return {
            "warning_id": self.warning_id,
            "type": self.type,
            "unit": self.unit,
            "kind": self.kind,
            "ref": self.ref,
            "due": iso(self.due),
            "lead": self.lead,
            "at": iso(self.at),
        }


@dataclass(frozen=True, slots=True)
class WarningPolicy:
    """Leads in days: calendar days for calendar deadlines, working days for working-day ones."""

    leads: tuple[int, ...] = (3, 1)
    # The contract's working-day deadline is the risk-warning signal's "3 working days".
    working_kinds: frozenset[str] = frozenset({"supervision.warning"})

    @classmethod
    def parse(cls, text: str) -> WarningPolicy:
        """'3,1' -> leads of 3 and 1 (working) days; '' -> no approaching warnings."""
        try:
            leads = tuple(sorted({int(p) for p in text.split(",") if p.strip()}, reverse=True))
        except ValueError:
            raise ValueError(f"warning leads must be whole days like '3,1', not {text!r}") from None
        if any(n <= 0 for n in leads):
            raise ValueError(f"warning leads must be positive days, not {text!r}")
        return cls(leads=leads)


@dataclass(slots=True)
class _Open:
    due: datetime
    pending: dict[str, datetime] = field(default_factory=dict)  # lead label -> instant


class Warner:
    """Open deadlines and the warning instants not reached yet; picklable with the engine."""

    def __init__(self, calendar: WorkCalendar, policy: WarningPolicy | None = None) -> None:
        self.calendar = calendar
        self.policy = policy or WarningPolicy()
        self._open: dict[_Key, _Open] = {}
        self._heap: list[tuple[datetime, int, _Key, str]] = []
        self._pushed = 0

    def feed(
        self, states: Iterable[DeadlineState], watermark: datetime | None
    ) -> list[DeadlineWarning]:
        out: list[DeadlineWarning] = []
        for state in states:
            self._change(state, out)
        if watermark is not None:
            self._reach(watermark, out)
        return out

    def _change(self, state: DeadlineState, out: list[DeadlineWarning]) -> None:
        key = (state.unit, state.kind, state.ref)
        known = self._open.pop(key, None)
        if state.status == "open":
            entry = _Open(state.due)
            for label, instant in self._instants(state):
                entry.pending[label] = instant
                self._pushed += 1
                heapq.heappush(self._heap, (instant, self._pushed, key, label))
            self._open[key] = entry
            return
        if known is not None:
            # Leads whose instant passed while it was still open, before this change closed it.
            for label, instant in sorted(known.pending.items(), key=lambda kv: kv[1]):
                if instant < state.updated_at:
                    out.append(_warning("deadline.approaching", key, known.due, label, instant))
        # The engine reports only changes, so an `overdue` state is a transition into overdue; a
        # deadline that jumps from open to `late` (the feedback that came after due was the event
        # that moved the clock past due) also became overdue on the way.
        if state.status == "overdue" or (state.status == "late" and known is not None):
            out.append(_warning("deadline.overdue", key, state.due, None, state.due))

    def _reach(self, watermark: datetime, out: list[DeadlineWarning]) -> None:
        heap = self._heap
        while heap and heap[0][0] <= watermark:
            instant, _, key, label = heapq.heappop(heap)
            entry = self._open.get(key)
            if entry is not None and entry.pending.get(label) == instant:
                del entry.pending[label]
                out.append(_warning("deadline.approaching", key, entry.due, label, instant))

    def _instants(self, state: DeadlineState) -> list[tuple[str, datetime]]:
        """(label, instant) per lead; leads that would fall at or before the notice are skipped
        (a notice due in 2 days gets no "3 days left" warning)."""
        due = local(state.due)
        working = state.kind in self.policy.working_kinds and due.timetz() == time(
            0, tzinfo=SHANGHAI
        )
        found = []
        for lead in self.policy.leads:
            label, instant = f"{lead}d", due - timedelta(days=lead)
            if working:
                # a year the calendar does not know: fall back to calendar days
                with contextlib.suppress(CalendarError):
                    label, instant = f"{lead}wd", self._working_back(due, lead)
            if instant > state.noticed_at:
                found.append((label, instant))
        return found

    def _working_back(self, due: datetime, lead: int) -> datetime:
        """The instant when exactly `lead` working days remain: the end (24:00) of the lead-th
        working day before the due day (due is 24:00 of its last working day, written 00:00)."""
        day = due.date() - timedelta(days=1)
        for _ in range(lead):
            day -= timedelta(days=1)
            while not self.calendar.is_workday(day):
                day -= timedelta(days=1)
        return datetime.combine(day + timedelta(days=1), time(0), SHANGHAI)


def _warning(
    kind: WarningType, key: _Key, due: datetime, lead: str | None, at: datetime
) -> DeadlineWarning:
    unit, deadline_kind, ref = key
    text = "\x1f".join((kind, unit, deadline_kind, ref, iso(due), lead or ""))
    return DeadlineWarning(
        warning_id=hashlib.sha256(text.encode("utf-8")).hexdigest()[:24],
        type=kind,
        unit=unit,
        kind=deadline_kind,
        ref=ref,
        due=local(due),
        lead=lead,
        at=local(at),
    )
