"""A notice is one notice however often it is posted (spec 5.3), and what it keeps alive (5.14).

A notice (or incident report, or risk-warning signal) is identified by its unit, its event type and
its reference. Its first posting fixes its assessment year, where it counts, and its deadline;
a re-post under a new event id only adds a posting. Once every posting is retracted it is gone,
and a later posting is a new notice.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.caps import Assessment, Routes
from engine.deadlines import Tracked

NoticeKey = tuple[str, str, str]  # unit, event type, reference

# The field that names the notice, per event type that posts one.
REF_FIELD: dict[str, str] = {
    "vuln.notice": "notice_id",
    "outreach.notice": "notice_id",
    "extranet.notice": "notice_id",
    "crypto.notice": "notice_id",
    "incident.report": "incident_id",
    "supervision.warning": "signal_id",
}


@dataclass(slots=True, eq=False)
class Notice:
    key: NoticeKey
    year: int  # the assessment year of its first posting: where it counts, however re-posted
    postings: dict[str, None]  # event ids of the postings still standing, in arrival order
    count_routes: Routes  # where its postings count, fixed by the first posting
    # The latest year anything can still change it in: the year of its latest posting or
    # feedback (a retraction of it, dated later, would reach the notice), or of its due instant
    # (feedback dated up to the due can still arrive and decide the deadline).
    keep_year: int
    tracked: Tracked | None = None  # its remediation deadline (vulnerability notices, signals)

    def survives(self, closed_through: int) -> bool:
        """Whether closing every year up to `closed_through` must keep it (spec 5.14)."""
        return self.keep_year > closed_through

    def touched(self, year: int) -> None:
        """An accepted event of `year` (a posting or a feedback) refers to the notice."""
        if year > self.keep_year:
            self.keep_year = year

    def pinned(self) -> list[Assessment]:
        """The assessments (caps, counting keys, ledger seq) a kept notice may still change."""
        found = [a for a, _ in self.count_routes]
        if self.tracked is not None:
            found += [a for a, _ in self.tracked.overdue_routes]
        return found
