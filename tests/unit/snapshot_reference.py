"""The engine's state as plain data exactly as engine/snapshot.py made it before its tables were
streamed (format tracker-engine-state/2, the whole state's rows built before a byte was
written): the reference tests/unit/test_checkpoint_memory.py compares the streamed text with.
Kept verbatim (but for `snapshot`'s name) so that the checkpoints written before stay the ones
written now; not used by the product."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.caps import Assessment, Claim
from engine.compiled import CompiledRule
from engine.core import Engine
from engine.deadlines import Tracked
from engine.notices import Notice
from engine.snapshot import FORMAT, fingerprint
from engine.snapshot_read import SnapshotError, entry_id_of


class _Tables:
    """Numbers each shared object once, in the order first met (deterministic)."""

    def __init__(self) -> None:
        self.assessments: dict[int, int] = {}
        self.claims: dict[int, int] = {}
        self.notices: dict[int, int] = {}
        self.tracked: dict[int, int] = {}
        self.a_rows: list[Any] = []
        self.c_rows: list[Any] = []
        self.n_rows: list[Any] = []
        self.t_rows: list[Any] = []
        self.rules: dict[tuple[str, str], int] = {}  # (rulebook, rule id): what rows refer to

    def rule(self, book: str, rule_id: str) -> int:
        found = self.rules.get((book, rule_id))
        if found is None:
            found = self.rules[(book, rule_id)] = len(self.rules)
        return found

    def assessment(self, a: Assessment) -> int:
        found = self.assessments.get(id(a))
        if found is not None:
            return found
        n = self.assessments[id(a)] = len(self.a_rows)
        row: list[Any] = [a.unit, a.year, a.rulebook, None, None, a.seq, a.head, None]
        self.a_rows.append(row)
        row[3] = {cap: str(v) for cap, v in a.used.items()}
        book = a.rulebook
        row[4] = [[self.rule(book, r), key, g] for (r, key), g in a.generations.items()]
        row[7] = [self.claim(a, c) for c in a.claims]
        return n

    def claim(self, a: Assessment, c: Claim) -> int:
        found = self.claims.get(id(c))
        if found is not None:
            return found
        owner = self.assessment(a)
        found = self.claims.get(id(c))  # the assessment's own claims are numbered with it
        if found is not None:
            return found
        n = self.claims[id(c)] = len(self.c_rows)
        supporters = c.event_ids if c.supporters is None else tuple(c.supporters)
        self.c_rows.append(
            [
                owner,
                self.rule(a.rulebook, c.rule.rule_id),
                c.count_key,
                c.source_unit,
                list(c.event_ids),
                c.effective_at.isoformat(),
                c.reason,
                # most claims: supported by the events they cite, and their entry id the one
                # their version implies (caps.py `_write`); null then, a third of the size
                None if supporters == c.event_ids else list(supporters),
                str(c.applied),
                None if c.entry_id == entry_id_of(c.claim_id, c.version) else c.entry_id,
                c.version,
                c.claim_id,
            ]
        )
        return n

    def pairs(self, pairs: list[tuple[Assessment, Claim]]) -> list[int]:
        return [self.claim(a, c) for a, c in pairs]

    def routes(self, routes: tuple[tuple[Assessment, CompiledRule], ...]) -> list[Any]:
        return [[self.assessment(a), self.rule(a.rulebook, rule.rule_id)] for a, rule in routes]

    def tracked_(self, t: Tracked) -> int:
        found = self.tracked.get(id(t))
        if found is not None:
            return found
        n = self.tracked[id(t)] = len(self.t_rows)
        row: list[Any] = [
            t.unit,
            t.kind,
            t.ref,
            t.event_id,
            t.at.isoformat(),
            t.due.isoformat(),
            t.notice_due.isoformat() if t.notice_due is not None else None,
            t.arrival,
            list(t.supporters),
            t.year,
            None,
            [[fid, at.isoformat()] for fid, at in t.feedbacks.items()],
            t.status,
            None,
        ]
        self.t_rows.append(row)
        row[10] = self.routes(t.overdue_routes)
        row[13] = self.pairs(t.overdue_claims)
        return n

    def notice(self, notice: Notice) -> int:
        found = self.notices.get(id(notice))
        if found is not None:
            return found
        n = self.notices[id(notice)] = len(self.n_rows)
        row: list[Any] = [*notice.key, notice.year, list(notice.postings), None, notice.keep_year]
        row.append(None)
        self.n_rows.append(row)
        row[5] = self.routes(notice.count_routes)
        row[7] = self.tracked_(notice.tracked) if notice.tracked is not None else None
        return n


def snapshot(engine: Engine) -> dict[str, Any]:
    if engine.ledger.entries or engine._deadlines.changed:
        raise SnapshotError("the engine holds output not drained yet: snapshot between events")
    t = _Tables()
    index = [
        [unit, year, t.assessment(a) if a is not None else None]
        for (unit, year), a in engine._assessments.items()
    ]
    notices = [
        [year, [t.notice(n) for n in by_key.values()]] for year, by_key in engine._notices.items()
    ]
    records = []
    for year, by_id in engine._records.items():
        rows = []
        for event_id, r in by_id.items():
            rows.append(
                [
                    event_id,
                    r.unit,
                    r.type,
                    [t.claim(a, c) for a, c in r.claims] if r.claims is not None else None,
                    t.notice(r.notice) if r.notice is not None else None,
                    t.tracked_(r.feedback_for) if r.feedback_for is not None else None,
                    r.retracted,
                ]
            )
        records.append([year, rows])
    queue = [t.tracked_(tracked) for _, _, tracked in engine._deadlines.queue._heap]
    config = fingerprint(engine.registry, engine.rulebooks, engine.calendar)
    return {
        "format": FORMAT,
        "config": config,
        "retain_years": engine.retain_years,
        "watermark": _text(engine.watermark),
        "closed_through": engine.closed_through,
        "next_close": _text(engine._next_close),
        "arrivals": engine._deadlines._arrivals,
        "versions": engine._deadlines._versions,
        "rules": [[book, rule_id] for book, rule_id in t.rules],
        "assessments": t.a_rows,
        "assessment_index": index,
        "claims": t.c_rows,
        "tracked": t.t_rows,
        "notices": t.n_rows,
        "notices_by_year": notices,
        "records": records,
        "queue": queue,
    }


def _text(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
