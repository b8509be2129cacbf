"""What the engine checks of an event before applying it, and the lookups that checking shares
with applying: validation reads the engine's state and changes none of it (a rejected event
leaves no trace). A base of `engine.core.Engine`, split from it by that domain."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.calendar import WorkCalendar
from engine.clock import iso, local
from engine.compiled import CompiledRule, CompiledRulebook
from engine.notices import REF_FIELD, Notice, NoticeKey
from engine.outcome import Record, Rejected
from engine.periods import DEFAULT_PERIODS, judge_due
from schemas.events import (
    ClockTick,
    Event,
    EventRetracted,
    SupervisionHandled,
    SupervisionWarning,
    VulnFeedback,
    VulnNotice,
)

MAX_AHEAD = timedelta(minutes=10)
OVERDUE_TRIGGER: dict[str, str] = {
    "vuln.notice": "vuln.overdue",
    "supervision.warning": "supervision.overdue",
}
# the event types that refer to an earlier event or notice
FOLLOW_UPS = frozenset({"event.retracted", "vuln.feedback", "supervision.handled"})
Judged = tuple[datetime, datetime | None]  # a new notice's due instant, and the due it carried
Prepared = Notice | Judged | None  # what validation found out, for applying the event


class Validation:
    """The engine's state that validation reads (`Engine.__init__` sets it)."""

    calendar: WorkCalendar
    watermark: datetime | None
    _chain: dict[str, tuple[str, ...]]
    _tier: dict[str, str]
    _by_year_tier: dict[tuple[int, str], str]
    _books: dict[str, CompiledRulebook]
    _records: dict[int, dict[str, Record]]
    _notices: dict[int, dict[NoticeKey, Notice]]
    _judging: dict[tuple[str, int, str], CompiledRule | None]

    def _validate(
        self, event: Event, at: datetime, now: datetime | None, year: int, closed: int | None
    ) -> Prepared:
        """Judge the event on the state applying it will see: `closed` is the last year closed
        once the clock has moved to its `at` (a year closing by this very event included)."""
        if now is not None and at > now + MAX_AHEAD:
            raise Rejected(f"at {iso(at)} is more than 10 minutes ahead of the processing clock")
        if isinstance(event, ClockTick):
            return None
        if event.unit not in self._chain:
            raise Rejected(f"unknown unit {event.unit!r}")
        if closed is not None and year <= closed:
            raise Rejected(f"assessment year {year} is closed (the clock is at {iso(self._wm)})")
        kind = event.type
        if kind in REF_FIELD:
            return self._prepare_notice(event, at, year, closed)
        if kind not in FOLLOW_UPS:
            return None
        if isinstance(event, VulnFeedback | SupervisionHandled):
            # the notice it is for: the clock's move to `at` closes no more than `closed`, so
            # `_dispatch` would find this one again
            return self._live_notice(event, closed)
        if isinstance(event, EventRetracted):
            self._retractable(event, closed)
        return None

    def _live_notice(self, event: VulnFeedback | SupervisionHandled, closed: int | None) -> Notice:
        if isinstance(event, VulnFeedback):
            key, what = (event.unit, "vuln.notice", event.notice_id), "notice"
        else:
            key, what = (event.unit, "supervision.warning", event.signal_id), "signal"
        notice = self._lookup_notice(key, closed)
        if notice is None or notice.tracked is None or notice.tracked.status == "withdrawn":
            state = "unknown" if notice is None else "withdrawn"
            raise Rejected(f"{event.type} for {state} {what} {key[2]!r} of unit {event.unit}")
        return notice

    def _retractable(self, event: EventRetracted, closed: int | None) -> Record:
        record = self._find_record(event.target_event_id, closed)
        if record is None or record.unit != event.unit:
            raise Rejected(
                f"retraction of unknown event {event.target_event_id!r} of unit {event.unit}"
            )
        if record.retracted:
            raise Rejected(f"event {event.target_event_id!r} was already retracted")
        if record.type == "event.retracted":
            raise Rejected("a retraction cannot itself be retracted")
        return record

    def _prepare_notice(
        self, event: Event, at: datetime, year: int, closed: int | None
    ) -> Prepared:
        assert not isinstance(event, ClockTick)
        ref = event.__dict__[REF_FIELD[event.type]]
        found = self._lookup_notice((event.unit, event.type, ref), closed)
        if found is not None and found.postings:
            return found  # posted again: the same notice (spec 5.3)
        if not isinstance(event, VulnNotice | SupervisionWarning):
            return None
        notice_due = local(event.due) if isinstance(event, VulnNotice) and event.due else None
        due = judge_due(
            notice=(event.type, ref, event.unit),
            at=at,
            notice_due=notice_due,
            rule=self._judging_rule(event.unit, year, OVERDUE_TRIGGER[event.type]),
            default=DEFAULT_PERIODS[event.type],
            calendar=self.calendar,
        )
        return due, notice_due

    def _judging_rule(self, unit: str, year: int, trigger: str) -> CompiledRule | None:
        """The first overdue rule covering a notice of `unit` (spec 5.7): its own rulebook's,
        then its ancestors' jurisdiction rules. Reads only: validation changes nothing (the
        cache holds what the registry and the rulebooks, which never change, decide)."""
        key = (unit, year, trigger)
        if key in self._judging:
            return self._judging[key]
        found = None
        for assessed in self._chain[unit]:
            book = self._book(assessed, year)
            found = book.covering(trigger, own=assessed == unit) if book is not None else None
            if found is not None:
                break
        self._judging[key] = found
        return found

    @property
    def _wm(self) -> datetime:
        assert self.watermark is not None
        return self.watermark

    def _book(self, unit: str, year: int) -> CompiledRulebook | None:
        book_id = self._by_year_tier.get((year, self._tier[unit]))
        return self._books[book_id] if book_id is not None else None

    def _find_record(self, event_id: str, closed: int | None = None) -> Record | None:
        for year, by_id in self._records.items():
            record = by_id.get(event_id)
            if record is not None:
                return record if closed is None or year > closed else None
        return None

    def _lookup_notice(self, key: NoticeKey, closed: int | None) -> Notice | None:
        """The notice of that key, unless closing the years up to `closed` forgets it."""
        for year, by_key in self._notices.items():
            found = by_key.get(key)
            if found is not None:
                if closed is not None and year <= closed and not found.survives(closed):
                    return None
                return found
        return None
