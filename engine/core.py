"""The deduction engine: applies events in arrival order and returns what changed.

Pure: no Kafka, no ClickHouse, no wall clock. The caller injects `now` for the one check that needs
the processing time (an `at` more than 10 minutes ahead); everything else runs on event time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from engine.calendar import DEFAULT_DEADLINES, NO_CALENDAR, CalendarError, WorkCalendar, due_at
from engine.caps import Assessment, Ledger
from engine.clock import assessment_year, iso, local, year_start
from engine.compiled import CompiledRule, CompiledRulebook, compile_rulebook
from engine.deadlines import DueQueue, Tracked
from engine.matching import count_keys, describe
from engine.outcome import ConfigError, Outcome, Record, Rejected
from schemas.events import (
    ClockTick,
    Event,
    EventRetracted,
    SupervisionHandled,
    SupervisionWarning,
    VulnFeedback,
    VulnNotice,
)
from schemas.ledger import DeadlineKind, DeadlineState
from schemas.registry import Registry
from schemas.rulebook import Rulebook

MAX_AHEAD = timedelta(minutes=10)
OVERDUE_TRIGGER: dict[str, str] = {
    "vuln.notice": "vuln.overdue",
    "supervision.warning": "supervision.overdue",
}


class Engine:
    def __init__(
        self,
        registry: Registry,
        rulebooks: Mapping[str, Rulebook],
        calendar: WorkCalendar = NO_CALENDAR,
        *,
        retain_years: int = 1,
    ) -> None:
        for a in registry.assessments:
            book = rulebooks.get(a.rulebook)
            if book is None:
                raise ConfigError(f"registry names unknown rulebook {a.rulebook!r}")
            if (book.year, book.tier) != (a.year, a.tier):
                raise ConfigError(
                    f"rulebook {a.rulebook} is for {book.tier} {book.year}, not {a.tier} {a.year}"
                )
        self.registry = registry
        self.calendar = calendar
        self.retain_years = retain_years
        self._books: dict[str, CompiledRulebook] = {
            a.rulebook: compile_rulebook(rulebooks[a.rulebook]) for a in registry.assessments
        }
        self._chain = {u.id: (u.id, *registry.ancestors(u.id)) for u in registry.units}
        self._tier = {u.id: u.tier for u in registry.units}
        self._by_year_tier = {(a.year, a.tier): a.rulebook for a in registry.assessments}
        self.ledger = Ledger()
        self.watermark: datetime | None = None
        self.closed_through: int | None = None
        self._next_close: datetime | None = None  # the instant the next year closes
        self._records: dict[int, dict[str, Record]] = {}
        self._tracked: dict[int, dict[tuple[str, str, str], Tracked]] = {}
        self._assessments: dict[tuple[str, int], Assessment | None] = {}
        self._route_cache: dict[
            tuple[str, int, str], tuple[tuple[Assessment, CompiledRule], ...]
        ] = {}
        self._queue = DueQueue()
        self._arrivals = 0
        self._versions = 0
        self._changed: dict[tuple[str, str, str], DeadlineState] = {}

    # -- public -------------------------------------------------------------------------------

    def apply(self, event: Event, *, now: datetime | None = None) -> Outcome:
        """Apply one event; a rejected event changes nothing (not even the watermark)."""
        if isinstance(event, ClockTick):
            if self.watermark is not None and event.at <= self.watermark:
                # Tick ids are not remembered (there are millions); one that does not move the
                # clock has no effect, and is not logged, so a replay sees the same expiries.
                return Outcome(
                    "duplicate", event.event_id, reason="tick does not advance the clock"
                )
        elif self._find_record(event.event_id) is not None:
            return Outcome("duplicate", event.event_id)
        year = assessment_year(event.at)
        try:
            prepared = self._validate(event, now, year)
        except Rejected as exc:
            return Outcome("rejected", event.event_id, reason=exc.reason)
        self._advance(event.at)
        if not isinstance(event, ClockTick):
            self._dispatch(event, prepared, year)
        return self._flush(event.event_id)

    def advance_to(self, at: datetime) -> Outcome:
        """Move event time forward without an event (what a tick does)."""
        self._advance(at)
        return self._flush("")

    def open_deadlines(self) -> list[DeadlineState]:
        return [
            t.state(self.watermark or t.at, self._versions)
            for by_key in self._tracked.values()
            for t in by_key.values()
            if t.status == "open"
        ]

    # -- validation (before any state changes) -------------------------------------------------

    def _validate(self, event: Event, now: datetime | None, year: int) -> datetime | None:
        if now is not None and event.at > now + MAX_AHEAD:
            raise Rejected(
                f"at {iso(event.at)} is more than 10 minutes ahead of the processing clock"
            )
        if isinstance(event, ClockTick):
            return None
        if event.unit not in self._chain:
            raise Rejected(f"unknown unit {event.unit!r}")
        if self.closed_through is not None and year <= self.closed_through:
            raise Rejected(f"assessment year {year} is closed (the clock is at {iso(self._wm)})")
        if isinstance(event, VulnFeedback | SupervisionHandled):
            self._live_tracked(event)
        elif isinstance(event, EventRetracted):
            self._retractable(event)
        elif isinstance(event, VulnNotice | SupervisionWarning):
            return self._due_of(event, year)
        return None

    def _live_tracked(self, event: VulnFeedback | SupervisionHandled) -> Tracked:
        kind: DeadlineKind
        if isinstance(event, VulnFeedback):
            kind, ref, what = "vuln.notice", event.notice_id, "notice"
        else:
            kind, ref, what = "supervision.warning", event.signal_id, "signal"
        tracked = self._lookup_tracked(event.unit, kind, ref)
        if tracked is None or tracked.status == "withdrawn":
            state = "unknown" if tracked is None else "withdrawn"
            raise Rejected(f"{event.type} for {state} {what} {ref!r} of unit {event.unit}")
        return tracked

    def _retractable(self, event: EventRetracted) -> Record:
        record = self._find_record(event.target_event_id)
        if record is None or record.unit != event.unit:
            raise Rejected(
                f"retraction of unknown event {event.target_event_id!r} of unit {event.unit}"
            )
        if record.retracted:
            raise Rejected(f"event {event.target_event_id!r} was already retracted")
        if record.type == "event.retracted":
            raise Rejected("a retraction cannot itself be retracted")
        return record

    def _due_of(self, event: VulnNotice | SupervisionWarning, year: int) -> datetime:
        if isinstance(event, VulnNotice) and event.due is not None:
            return local(event.due)
        trigger = OVERDUE_TRIGGER[event.type]
        deadline = DEFAULT_DEADLINES[event.type]
        for assessed in self._chain[event.unit]:
            book = self._book(assessed, year)
            found = book.deadline_for(trigger) if book is not None else None
            if found is not None:
                deadline = found
                break
        try:
            return due_at(event.at, deadline, self.calendar)
        except CalendarError as exc:
            raise Rejected(str(exc)) from None

    # -- event time ----------------------------------------------------------------------------

    @property
    def _wm(self) -> datetime:
        assert self.watermark is not None
        return self.watermark

    def _advance(self, at: datetime) -> None:
        if self.watermark is not None and at <= self.watermark:
            return
        self.watermark = at
        for tracked in self._queue.pop_passed(at):
            self._reconcile(tracked, at=tracked.due, cause=tracked.event_id)
        self._close_years()

    def _close_years(self) -> None:
        if self._next_close is not None and self._wm < self._next_close:
            return
        last_closed = assessment_year(self._wm) - 1 - self.retain_years
        self._next_close = year_start(last_closed + 2 + self.retain_years)
        if self.closed_through is not None and last_closed <= self.closed_through:
            return
        self.closed_through = last_closed
        for store in (self._records, self._tracked):
            for year in [y for y in store if y <= last_closed]:
                del store[year]
        for key in [k for k in self._assessments if k[1] <= last_closed]:
            del self._assessments[key]
        for route in [k for k in self._route_cache if k[1] <= last_closed]:
            del self._route_cache[route]
        self._queue.forget_year(last_closed)
        self.ledger.forget_year(last_closed)

    # -- applying ------------------------------------------------------------------------------

    def _dispatch(self, event: Event, due: datetime | None, year: int) -> None:
        assert not isinstance(event, ClockTick)
        record = Record(unit=event.unit, type=event.type)
        self._records.setdefault(year, {})[event.event_id] = record
        if isinstance(event, EventRetracted):
            self._retract(event, self._retractable(event))
        elif isinstance(event, VulnFeedback | SupervisionHandled):
            tracked = self._live_tracked(event)
            tracked.feedbacks[event.event_id] = event.at
            record.feedback_for = tracked
            self._reconcile(tracked, at=event.at, cause=event.event_id)
        else:
            if isinstance(event, VulnNotice | SupervisionWarning):
                assert due is not None
                record.tracked = [self._track(event, due, year)]
            self._count(event, record, year)

    def _count(self, event: Event, record: Record, year: int) -> None:
        assert not isinstance(event, ClockTick)
        routes = self._routes(event.unit, year, event.type)
        if not routes:
            return
        at = local(event.at)
        claims = record.claims = []
        for assessment, rule in routes:
            for key in count_keys(rule.rule, event):
                claim = self.ledger.open_claim(
                    assessment,
                    rule,
                    key,
                    source_unit=event.unit,
                    event_ids=(event.event_id,),
                    effective_at=at,
                    reason=describe(event, key),
                    supporter=event.event_id,
                )
                target = claim or assessment.by_key[(rule.rule_id, key)]
                claims.append((assessment, target))

    def _routes(
        self, unit: str, year: int, trigger: str
    ) -> tuple[tuple[Assessment, CompiledRule], ...]:
        """The (assessment, rule) pairs an event of `unit` counts for: its own rules, and the
        jurisdiction rules of every ancestor. Cached: the registry never changes under an engine."""
        key = (unit, year, trigger)
        routes = self._route_cache.get(key)
        if routes is None:
            found = []
            for assessed in self._chain[unit]:
                assessment = self._assessment(assessed, year)
                if assessment is None:
                    continue
                for rule in self._books[assessment.rulebook].by_trigger.get(trigger, ()):
                    if rule.rule.scope == "jurisdiction" or assessed == unit:
                        found.append((assessment, rule))
            routes = self._route_cache[key] = tuple(found)
        return routes

    def _track(self, event: VulnNotice | SupervisionWarning, due: datetime, year: int) -> Tracked:
        if isinstance(event, VulnNotice):
            kind: DeadlineKind = "vuln.notice"
            ref = event.notice_id
        else:
            kind, ref = "supervision.warning", event.signal_id
        existing = self._lookup_tracked(event.unit, kind, ref)
        if existing is not None and existing.status != "withdrawn":
            existing.supporters.add(event.event_id)  # a re-posted notice is the same notice
            return existing
        self._arrivals += 1
        tracked = Tracked(
            unit=event.unit,
            kind=kind,
            ref=ref,
            event_id=event.event_id,
            at=event.at,
            due=due,
            arrival=self._arrivals,
            supporters={event.event_id},
            year=year,
        )
        self._tracked.setdefault(year, {})[(event.unit, kind, ref)] = tracked
        self._emit_state(tracked, event.at)
        self._reconcile(tracked, at=event.at, cause=event.event_id)
        if tracked.status == "open":
            self._queue.push(tracked)
        return tracked

    def _reconcile(self, tracked: Tracked, *, at: datetime, cause: str) -> None:
        """Bring the overdue deduction and the status in line with the notice's facts."""
        before = tracked.status
        status = tracked.derive(self.watermark)
        wanted = status in ("overdue", "late")
        if wanted and not tracked.overdue_claims:
            self._open_overdue(tracked)
        elif not wanted and tracked.overdue_claims:
            why = "remediated on time" if status == "met" else f"notice {status}"
            for assessment, claim in tracked.overdue_claims:
                self.ledger.withdraw_claim(assessment, claim, at=local(at), why=why, cause=cause)
            tracked.overdue_claims.clear()
        if status != before:
            tracked.status = status
            self._emit_state(tracked, at)
            if status == "open":
                self._queue.push(tracked)

    def _open_overdue(self, tracked: Tracked) -> None:
        for assessment, rule in self._routes(
            tracked.unit, tracked.year, OVERDUE_TRIGGER[tracked.kind]
        ):
            key = "" if rule.rule.counting == "once_per_year" else f"{tracked.unit}/{tracked.ref}"
            claim = self.ledger.open_claim(
                assessment,
                rule,
                key,
                source_unit=tracked.unit,
                event_ids=(tracked.event_id,),
                effective_at=local(tracked.due),
                reason=f"{tracked.kind} {tracked.ref} of {tracked.unit} not remediated "
                f"by its due instant {iso(tracked.due)}",
                supporter=None,
            )
            if claim is not None:
                tracked.overdue_claims.append((assessment, claim))

    def _retract(self, event: EventRetracted, target: Record) -> None:
        target.retracted = True
        at, cause = local(event.at), event.event_id
        why = f"event {event.target_event_id} retracted: {event.reason}"
        for assessment, claim in target.claims or ():
            claim.supporters.discard(event.target_event_id)
            current = assessment.by_key.get((claim.rule.rule_id, claim.count_key))
            if not claim.supporters and current is claim:
                self.ledger.withdraw_claim(assessment, claim, at=at, why=why, cause=cause)
        for tracked in target.tracked or ():
            tracked.supporters.discard(event.target_event_id)
            self._reconcile(tracked, at=event.at, cause=cause)
        if target.feedback_for is not None:
            target.feedback_for.feedbacks.pop(event.target_event_id, None)
            self._reconcile(target.feedback_for, at=event.at, cause=cause)

    # -- lookups -------------------------------------------------------------------------------

    def _book(self, unit: str, year: int) -> CompiledRulebook | None:
        book_id = self._by_year_tier.get((year, self._tier[unit]))
        return self._books[book_id] if book_id is not None else None

    def _assessment(self, unit: str, year: int) -> Assessment | None:
        key = (unit, year)
        if key not in self._assessments:
            book = self._book(unit, year)
            self._assessments[key] = (
                Assessment(unit, year, book.id, dict(book.cap_points)) if book else None
            )
        return self._assessments[key]

    def _find_record(self, event_id: str) -> Record | None:
        for by_id in self._records.values():
            record = by_id.get(event_id)
            if record is not None:
                return record
        return None

    def _lookup_tracked(self, unit: str, kind: str, ref: str) -> Tracked | None:
        for by_key in self._tracked.values():
            found = by_key.get((unit, kind, ref))
            if found is not None:
                return found
        return None

    def _emit_state(self, tracked: Tracked, at: datetime) -> None:
        # one counter for all deadlines: a re-posted withdrawn notice still gets a higher version
        self._versions += 1
        self._changed[(tracked.unit, tracked.kind, tracked.ref)] = tracked.state(at, self._versions)

    def _flush(self, event_id: str) -> Outcome:
        if not self.ledger.entries and not self._changed:
            return Outcome("accepted", event_id)
        entries = tuple(self.ledger.drain())
        changed = tuple(self._changed.values())
        self._changed.clear()
        return Outcome("accepted", event_id, entries=entries, deadlines=changed)


def run(engine: Engine, events: Iterable[Event]) -> list[Outcome]:
    """Apply a sequence of events (no wall clock: replay and tests)."""
    return [engine.apply(e) for e in events]


__all__ = ["Engine", "run"]
