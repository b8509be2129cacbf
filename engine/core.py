"""The deduction engine: applies events in arrival order and returns what changed.

Pure: no Kafka, no ClickHouse, no wall clock. The caller injects `now` for the one check that needs
the processing time (an `at` more than 10 minutes ahead); everything else runs on event time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from engine.calendar import NO_CALENDAR, WorkCalendar
from engine.caps import Assessment, Ledger, Routes
from engine.clock import SHANGHAI, assessment_year, local, year_start
from engine.compiled import CompiledRule, CompiledRulebook, compile_rulebook
from engine.matching import reasoner
from engine.notices import REF_FIELD, Notice, NoticeKey
from engine.outcome import ConfigError, Outcome, Record, Rejected, accepted, new_tuple
from engine.remediation import Remediation
from engine.retention import close_through
from engine.validation import (
    FOLLOW_UPS,
    MAX_AHEAD,
    OVERDUE_TRIGGER,
    Judged,
    Prepared,
    Validation,
)
from schemas.events import (
    EVENT_TYPES,
    ClockTick,
    Event,
    EventRetracted,
    SupervisionHandled,
    UnitEvent,
    VulnFeedback,
)
from schemas.ledger import DeadlineState
from schemas.registry import Registry
from schemas.rulebook import Rulebook

# the event types that only count: neither post a notice nor refer to one (`_dispatch`)
_FINDINGS = EVENT_TYPES.difference(REF_FIELD, FOLLOW_UPS, {"clock.tick"})


class Engine(Validation):
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
        self.rulebooks = rulebooks  # what a snapshot's fingerprint names (engine/snapshot.py)
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
        self._records: dict[int, dict[str, Record]] = {}  # by the event's assessment year
        self._notices: dict[int, dict[NoticeKey, Notice]] = {}  # by the notice's year
        self._assessments: dict[tuple[str, int], Assessment | None] = {}
        self._route_cache: dict[tuple[str, int, str], Routes] = {}
        self._judging: dict[tuple[str, int, str], CompiledRule | None] = {}  # `_judging_rule`
        self._deadlines = Remediation(self.ledger)

    # -- public -------------------------------------------------------------------------------

    def apply(self, event: Event, *, now: datetime | None = None) -> Outcome:
        """Apply one event; a rejected event changes nothing (not even the watermark)."""
        # Tick ids are not remembered (there are millions); one that does not move the clock has
        # no effect, and is not logged, so a replay sees the same expiries.
        # The instant in +08:00 with the standard library's zone, once: the parser's zone
        # (pydantic's TzInfo) makes every conversion and mixed comparison several times dearer,
        # and every output shows the instant in +08:00 anyway.
        # The event's fields read from its __dict__, a dict lookup each: a model's attributes go
        # through the `__getattr__` slot pydantic defines, which the interpreter cannot specialise.
        fields = event.__dict__
        at = fields["at"]
        if at.tzinfo is not SHANGHAI:
            at = at.astimezone(SHANGHAI)
        event_id, watermark, kind = fields["event_id"], self.watermark, fields["type"]
        if kind == "clock.tick" and watermark is not None and at <= watermark:
            return Outcome("duplicate", event_id, reason="tick does not advance the clock")
        for by_id in self._records.values():  # `_find_record`: any type reusing a known id
            if event_id in by_id:
                return Outcome("duplicate", event_id)
        year = at.year  # the assessment year: `at` is in Asia/Shanghai
        next_close = self._next_close
        closed = (
            self.closed_through
            if next_close is not None and at < next_close  # `_closed_after`'s first answer
            else self._closed_after(at)
        )
        try:
            prepared = self._validate(event, at, now, year, closed)
        except Rejected as exc:
            return Outcome("rejected", event_id, reason=exc.reason)
        if watermark is None or at > watermark:
            self._advance(at)
        expired = len(self.ledger.entries)
        if not isinstance(event, ClockTick):
            self._dispatch(event, at, prepared, year)
        return self._flush(event_id, expired, at)

    def advance_to(self, at: datetime) -> Outcome:
        """Move event time forward without an event (what a tick does)."""
        at = local(at)
        self._advance(at)
        return self._flush("", len(self.ledger.entries), at)

    def open_deadlines(self) -> list[DeadlineState]:
        return [
            n.tracked.state(self.watermark or n.tracked.at, self._deadlines.version)
            for by_key in self._notices.values()
            for n in by_key.values()
            if n.tracked is not None and n.tracked.status == "open"
        ]

    # -- event time ----------------------------------------------------------------------------

    def _advance(self, at: datetime) -> None:
        if self.watermark is not None and at <= self.watermark:
            return
        self.watermark = at
        if self._deadlines.queue.passed(at):
            self._deadlines.expire(at)
        if self._next_close is None or at >= self._next_close:
            self._close_years()

    def _closed_after(self, at: datetime) -> int | None:
        """The last closed year once the clock has moved to `at` (see `_close_years`)."""
        if self._next_close is not None and at < self._next_close:
            return self.closed_through  # moving there closes nothing new
        last = assessment_year(at) - 1 - self.retain_years
        return max(last, self.closed_through) if self.closed_through is not None else last

    def _close_years(self) -> None:
        if self._next_close is not None and self._wm < self._next_close:
            return
        last_closed = assessment_year(self._wm) - 1 - self.retain_years
        self._next_close = year_start(last_closed + 2 + self.retain_years)
        if self.closed_through is not None and last_closed <= self.closed_through:
            return
        self.closed_through = last_closed
        self._judging.clear()  # made again for the years still open
        close_through(
            last_closed,
            records=self._records,
            notices=self._notices,
            assessments=self._assessments,
            routes=self._route_cache,
            queue=self._deadlines.queue,
        )

    # -- applying ------------------------------------------------------------------------------

    def _dispatch(self, event: UnitEvent, at: datetime, prepared: Prepared, year: int) -> None:
        """Apply an accepted event of a unit: a finding counts, a notice is posted, a follow-up
        finds what it refers to."""
        fields = event.__dict__  # dict lookups, not the model's attribute hook
        unit, kind, event_id = fields["unit"], fields["type"], fields["event_id"]
        record = Record(unit, kind)
        by_id = self._records.get(year)
        if by_id is None:
            by_id = self._records[year] = {}
        by_id[event_id] = record
        if kind in _FINDINGS:  # half of a dense stream: it only counts
            routes = self._route_cache.get((unit, year, kind))  # `_routes`, once cached
            if routes is None:
                routes = self._routes(unit, year, kind)
            self._count(event, at, record, routes)
        elif kind in REF_FIELD:  # a notice posted
            if isinstance(prepared, Notice):  # posted again
                prepared.postings[event_id] = None
                prepared.touched(year)
                record.notice = prepared
                self._count(event, at, record, prepared.count_routes)
            else:  # its first posting
                record.notice = self._open_notice(event, at, prepared, year)
                self._count(event, at, record, record.notice.count_routes)
        elif isinstance(event, EventRetracted):
            self._retract(event, at, self._retractable(event, self.closed_through))
        elif isinstance(event, VulnFeedback | SupervisionHandled):
            notice = (
                prepared
                if isinstance(prepared, Notice)
                else self._live_notice(event, self.closed_through)
            )
            notice.touched(year)
            tracked = notice.tracked
            assert tracked is not None
            tracked.feedbacks[event_id] = at
            record.feedback_for = tracked
            self._deadlines.reconcile(tracked, watermark=self.watermark, at=at, cause=event_id)

    def _count(self, event: UnitEvent, at: datetime, record: Record, routes: Routes) -> None:
        if not routes:
            return
        claims = []
        # what the rules' counting keys and the reason read (engine/matching.py), and the
        # event's own fields from it: a dict lookup each, not the model's attribute hook
        fields = event.__dict__
        event_id, unit, kind = fields["event_id"], fields["unit"], fields["type"]
        event_ids = (event_id,)
        count = self.ledger.count
        # The reason depends on the key only for outreach notices (matching.reasoner): made once
        # per event otherwise, as are the cited ids, shared by the event's entries.
        per_key, reason = kind == "outreach.notice", ""
        for assessment, rule in routes:
            by_key, rule_id = assessment.by_key, rule.rule_id
            for key in rule.keys(fields):
                ident = (rule_id, key)
                counted = by_key.get(ident)
                if counted is not None:  # counted already: one more event asserts it
                    counted.backers()[event_id] = None
                else:
                    if per_key or not reason:
                        reason = reasoner(kind, unit)(fields, key)
                    counted = count(
                        assessment, rule, key, unit, event_ids, at, reason, event_id, ident
                    )
                claims.append((assessment, counted))
        # kept as long as the event's year is open (one per event): a tuple, not the list's
        # spare room
        record.claims = tuple(claims)

    def _routes(self, unit: str, year: int, trigger: str) -> Routes:
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

    def _open_notice(
        self, event: UnitEvent, at: datetime, judged: Judged | None, year: int
    ) -> Notice:
        fields, routes = event.__dict__, self._route_cache  # dict lookups, as in `apply`
        unit, kind = fields["unit"], fields["type"]
        key = (unit, kind, fields[REF_FIELD[kind]])
        for held in self._notices.values():
            held.pop(key, None)  # a withdrawn notice posted again is a new notice
        # positional, and the routes read from their cache first: one notice in three events
        count_routes = routes.get((unit, year, kind)) or self._routes(unit, year, kind)
        notice = Notice(key, year, {fields["event_id"]: None}, count_routes, year)
        by_key = self._notices.get(year)
        if by_key is None:
            by_key = self._notices[year] = {}
        by_key[key] = notice
        if judged is not None:
            trigger = OVERDUE_TRIGGER[kind]
            notice.tracked = self._deadlines.track(
                notice,
                event,
                at,
                judged,
                overdue_routes=routes.get((unit, year, trigger))
                or self._routes(unit, year, trigger),
                watermark=self.watermark,
            )
            notice.touched(judged[0].year)  # due instants are made in Asia/Shanghai
        return notice

    def _retract(self, event: EventRetracted, at: datetime, target: Record) -> None:
        target.retracted = True
        cause, gone = event.event_id, event.target_event_id
        why = f"event {gone} retracted: {event.reason}"
        for assessment, claim in target.claims or ():
            supporters = claim.backers()
            supporters.pop(gone, None)
            if assessment.by_key.get((claim.rule.rule_id, claim.count_key)) is not claim:
                continue
            if not supporters:
                self.ledger.withdraw_claim(assessment, claim, at=at, why=why, cause=cause)
            elif gone in claim.event_ids:  # spec 5.15: cite what still supports it
                recited = tuple(supporters)
                self.ledger.recite(assessment, claim, recited, at=at, why=why, cause=cause)
        notice = target.notice
        if notice is not None:
            notice.postings.pop(gone, None)
            tracked = notice.tracked
            if tracked is not None:
                recite = tracked.event_id == gone and bool(notice.postings)
                if recite:
                    first = next(iter(notice.postings))
                    self._deadlines.recite(tracked, first, at=at, why=why, cause=cause)
                self._deadlines.reconcile(
                    tracked, watermark=self.watermark, at=at, cause=cause, changed=recite
                )
        if target.feedback_for is not None:
            target.feedback_for.feedbacks.pop(gone, None)
            self._deadlines.reconcile(
                target.feedback_for, watermark=self.watermark, at=at, cause=cause
            )

    # -- lookups -------------------------------------------------------------------------------

    def _assessment(self, unit: str, year: int) -> Assessment | None:
        key = (unit, year)
        if key not in self._assessments:
            if self.closed_through is not None and year <= self.closed_through:
                return None  # a closed year's caps are never made afresh
            book = self._book(unit, year)
            self._assessments[key] = (
                Assessment(unit, year, book.id, dict(book.cap_points)) if book else None
            )
        return self._assessments[key]

    def _flush(self, event_id: str, expired: int, at: datetime) -> Outcome:
        """What the event changed. The first `expired` entries are the overdue deductions of the
        deadlines the clock passed on its way to `at`; the rest are the event's own."""
        ledger = self.ledger
        entries = ledger.entries
        if not self._deadlines.changed:  # most events: none or one entry, no deadline
            if not entries:
                return new_tuple(Outcome, ("accepted", event_id, None, (), (), ()))
            if not expired and len(entries) == 1 and entries[0].effective_at is at:
                ledger.entries = []  # seen at its own instant (see `accepted`)
                return new_tuple(Outcome, ("accepted", event_id, None, (entries[0],), (), ()))
        ledger.entries = []
        deadlines = self._deadlines.drain() if self._deadlines.changed else ()
        return accepted(event_id, tuple(entries), deadlines, expired, at)


def run(engine: Engine, events: Iterable[Event]) -> list[Outcome]:
    """Apply a sequence of events (no wall clock: replay and tests)."""
    return [engine.apply(e) for e in events]


__all__ = ["MAX_AHEAD", "Engine", "run"]
