"""Remediation deadlines on event time: expiry, the overdue deduction and its reversal, and the
deadline states the engine reports (spec 5.8, 5.9, 5.12, 5.15)."""

from __future__ import annotations

from datetime import datetime

from engine.caps import Ledger, Routes
from engine.clock import iso, local
from engine.deadlines import DueQueue, Tracked
from engine.notices import Notice
from schemas.events import Event
from schemas.ledger import DeadlineKind, DeadlineState


class Remediation:
    """Keeps every tracked deadline's status and overdue deduction in line with its facts."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.queue = DueQueue()
        self._arrivals = 0
        self._versions = 0
        # every state emitted since the last drain, in version order: a deadline that the clock
        # expires and the same event then changes again has both states in the history
        self.changed: list[DeadlineState] = []

    def track(
        self,
        notice: Notice,
        event: Event,
        at: datetime,
        judged: tuple[datetime, datetime | None],
        *,
        overdue_routes: Routes,
        watermark: datetime | None,
    ) -> Tracked:
        """Open the deadline of a newly posted notice or signal, posted `at` (its `at` in
        +08:00): `judged` is the instant that judges it and the due the notice carried."""
        self._arrivals += 1
        kind: DeadlineKind = "vuln.notice" if event.type == "vuln.notice" else "supervision.warning"
        unit, _, ref = notice.key
        # positional (unit, kind, ref, event_id, at, due, notice_due, arrival, supporters, year,
        # overdue_routes): one in eight events opens a deadline
        tracked = Tracked(
            unit,
            kind,
            ref,
            event.event_id,
            at,
            judged[0],
            judged[1],
            self._arrivals,
            notice.postings,
            notice.year,
            overdue_routes,
        )
        self._emit(tracked, at)
        self.reconcile(tracked, watermark=watermark, at=at, cause=event.event_id)
        if tracked.status == "open":
            self.queue.push(tracked)
        return tracked

    def expire(self, watermark: datetime) -> None:
        """Every open deadline the clock has passed, in order of due instant, then arrival."""
        for tracked in self.queue.pop_passed(watermark):
            self.reconcile(tracked, watermark=watermark, at=tracked.due, cause=tracked.event_id)

    def reconcile(
        self,
        tracked: Tracked,
        *,
        watermark: datetime | None,
        at: datetime,
        cause: str,
        changed: bool = False,
    ) -> None:
        """Bring the overdue deduction and the status in line with the notice's facts; a state
        is reported when the status changed (or, `changed`, anything else it shows)."""
        before = tracked.status
        status = tracked.derive(watermark)
        wanted = status in ("overdue", "late")
        if wanted and not tracked.overdue_claims:
            self._open_overdue(tracked)
        elif not wanted and tracked.overdue_claims:
            why = "remediated on time" if status == "met" else f"notice {status}"
            for assessment, claim in tracked.overdue_claims:
                self.ledger.withdraw_claim(assessment, claim, at=local(at), why=why, cause=cause)
            tracked.overdue_claims.clear()
        if status != before or changed:
            tracked.status = status
            self._emit(tracked, at)
            if status == "open" and before != "open":
                self.queue.push(tracked)

    def recite(
        self, tracked: Tracked, event_id: str, *, at: datetime, why: str, cause: str
    ) -> None:
        """The posting the deadline cited was retracted: cite `event_id`, a posting still
        standing, in the deadline and in its overdue entries (spec 5.15)."""
        tracked.event_id = event_id
        for assessment, claim in tracked.overdue_claims:
            self.ledger.recite(assessment, claim, (event_id,), at=local(at), why=why, cause=cause)

    @property
    def version(self) -> int:
        return self._versions

    def drain(self) -> tuple[DeadlineState, ...]:
        """Every state emitted since the last drain, oldest first (the last of a deadline is its
        latest)."""
        out = tuple(self.changed)
        self.changed.clear()
        return out

    def _open_overdue(self, tracked: Tracked) -> None:
        for assessment, rule in tracked.overdue_routes:
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

    def _emit(self, tracked: Tracked, at: datetime) -> None:
        # one counter for all deadlines: a re-posted withdrawn notice still gets a higher version
        self._versions += 1
        self.changed.append(tracked.state(at, self._versions))
