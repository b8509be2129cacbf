"""Notices and signals that open a remediation deadline, and their status (spec 5.8, 5.9, 5.12)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime

from engine.caps import Assessment, Claim, Routes
from engine.clock import SHANGHAI, local
from schemas.ledger import DeadlineKind, DeadlineState, DeadlineStatus, trusted_state


@dataclass(slots=True, eq=False)
class Tracked:
    """A vulnerability notice or a risk-warning signal of one unit."""

    unit: str
    kind: DeadlineKind
    ref: str
    event_id: str  # the earliest posting still standing, which the deadline and its entries cite
    at: datetime
    due: datetime  # the instant that judges it (spec 5.7)
    notice_due: datetime | None  # the due the notice carried, kept for show
    arrival: int
    supporters: dict[str, None]  # the notice's postings still standing (shared with the Notice)
    year: int  # assessment year of the notice (Asia/Shanghai), fixed at arrival
    overdue_routes: Routes  # where being overdue deducts, fixed at arrival
    feedbacks: dict[str, datetime] = field(default_factory=dict)
    status: DeadlineStatus = "open"
    overdue_claims: list[tuple[Assessment, Claim]] = field(default_factory=list)

    def derive(self, watermark: datetime | None) -> DeadlineStatus:
        """The status the facts imply; feedback at the due instant is on time (spec 5.9)."""
        if not self.supporters:
            return "withdrawn"
        first = min(self.feedbacks.values()) if self.feedbacks else None
        if first is not None and first <= self.due:
            return "met"
        if watermark is not None and watermark > self.due:
            return "late" if first is not None else "overdue"
        return "open"

    def state(self, updated_at: datetime, version: int) -> DeadlineState:
        first = min(self.feedbacks.values()) if self.feedbacks else None
        at, due, notice_due = self.at, self.due, self.notice_due
        # `local` only where the instant is not in +08:00 already (it then returns the same
        # object): the engine's instants nearly all are, and a state is made per deadline change
        return trusted_state(
            {
                "unit": self.unit,
                "kind": self.kind,
                "ref": self.ref,
                "year": self.year,
                "event_id": self.event_id,
                "noticed_at": at if at.tzinfo is SHANGHAI else local(at),
                "due": due if due.tzinfo is SHANGHAI else local(due),
                "notice_due": None if notice_due is None else local(notice_due),
                "status": self.status,
                "feedback_at": None if first is None else local(first),
                "updated_at": updated_at if updated_at.tzinfo is SHANGHAI else local(updated_at),
                "version": version,
            },
        )


@dataclass(slots=True)
class DueQueue:
    """Open deadlines ordered by due instant, then by the notices' arrival (spec 5.8)."""

    _heap: list[tuple[datetime, int, Tracked]] = field(default_factory=list)

    def push(self, tracked: Tracked) -> None:
        heapq.heappush(self._heap, (tracked.due, tracked.arrival, tracked))

    def passed(self, watermark: datetime) -> bool:
        """Whether the watermark has passed the earliest due instant queued (cheap: per event)."""
        return bool(self._heap) and self._heap[0][0] < watermark

    def pop_passed(self, watermark: datetime) -> list[Tracked]:
        """Open deadlines whose due instant the watermark has strictly passed, in order."""
        out = []
        while self._heap and self._heap[0][0] < watermark:
            due, _, tracked = heapq.heappop(self._heap)
            if tracked.status == "open" and tracked.due == due:
                out.append(tracked)
        return out

    def compact(self) -> None:
        """Drop entries of deadlines no longer open (they would be skipped when popped)."""
        self._heap = [e for e in self._heap if e[2].status == "open" and e[2].due == e[0]]
        heapq.heapify(self._heap)
