"""The tables of a snapshot (engine/snapshot.py), numbered and made row by row: the checkpoint
writer's half, kept apart for size.

On a big state this is most of a checkpoint's CPU besides the encoding (issue 12 item 4: the
200k stream's checkpoint numbers and makes ~800k rows), so the loops here avoid what costs per
row without changing a byte of the rows: an object already numbered is not numbered again by
a call, a claim's assessment and rule numbers are looked up once per run of claims of the same
assessment, and nothing is rebuilt per row that a table shares (a rulebook's rule numbers; the
row of a route tuple, which the engine shares between every notice and deadline of a unit,
year and trigger). A loop that only looks up (an assessment's counting keys, its claims'
numbers) runs in C (`dict.fromkeys`, `map`, `zip`), but only where that is still one pass over
the objects: on a big state most of the time is the reading of objects scattered in memory,
so two passes in C cost more than one in Python (measured: BENCHMARKS.md). The rows are
tuples (JSON spells them as lists; `Rows.plain` gives lists), a route's shared by every row of
that route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from functools import partial
from operator import itemgetter
from typing import Any, TypeVar

from engine.caps import Assessment, Claim
from engine.chain import minute_text
from engine.clock import SHANGHAI
from engine.compiled import CompiledRule
from engine.core import Engine
from engine.deadlines import Tracked
from engine.notices import Notice
from engine.outcome import Record

_K = TypeVar("_K")
Routes = tuple[tuple[Assessment, CompiledRule], ...]

_FIRST, _SECOND = itemgetter(0), itemgetter(1)


class Rows:
    """A table of the snapshot made row by row as it is read (`streamed`), so that a writer
    holds a few rows at a time, never the whole state's (issue 12 item 4: at 1M events of one
    year the rows built at once were +650 MiB above the live engine). `nested`: its rows are
    lists holding Rows themselves (an assessment's claims and counting keys, a year's records),
    to be opened one by one. The other tables' rows are tuples, which JSON spells as lists
    (one allocation each where a list takes two: ~800k rows on the 200k stream); `plain`
    gives lists. Read it before the engine applies another event: it reads the engine as it
    is then."""

    __slots__ = ("_make", "nested")

    def __init__(self, make: Callable[[], Iterator[Any]], nested: bool = False) -> None:
        self._make = make
        self.nested = nested

    def __iter__(self) -> Iterator[Any]:
        return self._make()

    def plain(self) -> list[Any]:
        """The rows as plain data: lists throughout, as the text reads back."""
        return [_plain(row) for row in self]


def _plain(value: Any) -> Any:
    if isinstance(value, Rows):
        return value.plain()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class Numbers:
    """Numbers each shared object once, in the order first met (deterministic); the rows are
    made later, from these numbers. The order is the one in which whole rows were once built
    (a row numbered, then what it refers to, depth first), so the text is as it always was."""

    def __init__(self) -> None:
        # keyed by the objects themselves (hashed by identity: eq=False), which the engine
        # holds anyway; in insertion order, so their keys are the tables' rows in order
        self.claims: dict[Claim, int] = {}
        self.claim_owner: list[Assessment] = []
        self.notices: dict[Notice, int] = {}
        self.tracked: dict[Tracked, int] = {}
        self.assessments: dict[int, int] = {}  # by id(): an Assessment compares by value
        self.a_list: list[Assessment] = []
        self.rules: dict[tuple[str, str], int] = {}  # (rulebook, rule id): what rows refer to
        self._by_book: dict[str, dict[str, int]] | None = None  # `rules` per book, for the rows
        # route tuples numbered already, and their rows, by id() (the tuple kept: the id is its
        # own while it lives); the engine shares one per unit, year and trigger (core.py)
        self._routes: dict[int, Routes] = {}
        self._routes_rows: dict[int, tuple[Routes, tuple[tuple[int, int], ...]]] = {}

    def rule(self, book: str, rule_id: str) -> int:
        found = self.rules.get((book, rule_id))
        if found is None:
            found = self.rules[(book, rule_id)] = len(self.rules)
        return found

    def assessment(self, a: Assessment) -> int:
        found = self.assessments.get(id(a))
        if found is not None:
            return found
        n = self.assessments[id(a)] = len(self.a_list)
        self.a_list.append(a)
        book, rules = a.rulebook, self.rules
        # the rules of its counting keys in the order first met, `dict.fromkeys` keeping the
        # first of each: in C, over its many keys
        for r in dict.fromkeys(map(_FIRST, a.generations)):
            if (book, r) not in rules:
                rules[(book, r)] = len(rules)
        # its claims numbered with it, in its order (what `claim` does for each, inlined: an
        # assessment's claims are most of the objects numbered on a dense stream). One pass in
        # Python: the same in C takes two or three, and each reads every claim from memory
        # again, which costs more than the loop saves
        claims, owner = self.claims, self.claim_owner
        for c in a.claims:
            if c not in claims:
                claims[c] = len(owner)
                owner.append(a)
                if (book, c.rule.rule_id) not in rules:
                    rules[(book, c.rule.rule_id)] = len(rules)
        return n

    def claim(self, a: Assessment, c: Claim) -> int:
        found = self.claims.get(c)
        if found is not None:
            return found
        self.assessment(a)
        found = self.claims.get(c)  # the assessment's own claims are numbered with it
        if found is not None:
            return found
        n = self.claims[c] = len(self.claim_owner)
        self.claim_owner.append(a)
        self.rule(a.rulebook, c.rule.rule_id)
        return n

    def routes(self, routes: Routes) -> None:
        if self._routes.get(id(routes)) is routes:
            return  # numbered: a route tuple is shared by many notices and deadlines
        for a, rule in routes:
            self.assessment(a)
            self.rule(a.rulebook, rule.rule_id)
        self._routes[id(routes)] = routes

    def tracked_(self, t: Tracked) -> int:
        found = self.tracked.get(t)
        if found is not None:
            return found
        n = self.tracked[t] = len(self.tracked)
        self.routes(t.overdue_routes)
        for a, c in t.overdue_claims:
            self.claim(a, c)
        return n

    def notice(self, notice: Notice) -> int:
        found = self.notices.get(notice)
        if found is not None:
            return found
        n = self.notices[notice] = len(self.notices)
        self.routes(notice.count_routes)
        if notice.tracked is not None:
            self.tracked_(notice.tracked)
        return n

    def number(self, engine: Engine) -> None:
        """Every shared object of the engine, in the order the tables' rows list them. (What is
        numbered already is skipped here rather than in a call: most records' claims are.)"""
        claims, notices, tracked = self.claims, self.notices, self.tracked
        for a in engine._assessments.values():
            if a is not None:
                self.assessment(a)
        for by_key in engine._notices.values():
            for notice in by_key.values():
                if notice not in notices:
                    self.notice(notice)
        for by_id in engine._records.values():
            for r in by_id.values():
                if r.claims is not None:
                    for a, c in r.claims:
                        if c not in claims:
                            self.claim(a, c)
                if r.notice is not None and r.notice not in notices:
                    self.notice(r.notice)
                if r.feedback_for is not None and r.feedback_for not in tracked:
                    self.tracked_(r.feedback_for)
        for _, _, item in engine._deadlines.queue._heap:
            if item not in tracked:
                self.tracked_(item)

    # the rows, from the numbers (every object they refer to is numbered by now)

    def _rules_by_book(self) -> dict[str, dict[str, int]]:
        # made once, when the rows are first read: every rule is numbered by then
        if self._by_book is None:
            self._by_book = {}
            for (book, rule_id), n in self.rules.items():
                self._by_book.setdefault(book, {})[rule_id] = n
        return self._by_book

    def assessment_rows(self) -> Iterator[list[Any]]:
        # an assessment's counting keys and claims are most of the state on a dense stream
        # (one assessment per unit and year): tables of their own, not lists held at once
        for a in self.a_list:
            yield [
                a.unit,
                a.year,
                a.rulebook,
                {cap: str(v) for cap, v in a.used.items()},
                Rows(partial(self.generation_rows, a)),
                a.seq,
                a.head,
                Rows(partial(numbered, self.claims, a.claims)),
            ]

    def generation_rows(self, a: Assessment) -> Iterator[tuple[int, str, int]]:
        generations = a.generations
        if not generations:
            return iter(())
        rule_of = self._rules_by_book()[a.rulebook]
        # [rule number, counting key, generation] per key, made in C (~155k on the 200k stream)
        numbers = map(rule_of.__getitem__, map(_FIRST, generations))
        return zip(numbers, map(_SECOND, generations), generations.values(), strict=True)

    def claim_rows(self) -> Iterator[tuple[Any, ...]]:
        assessments, by_book = self.assessments, self._rules_by_book()
        last: Assessment | None = None
        owner, rule_of = 0, {}
        for c, a in zip(self.claims, self.claim_owner, strict=True):
            if a is not last:  # an assessment's claims are numbered in a run: looked up once
                last, owner, rule_of = a, assessments[id(a)], by_book[a.rulebook]
            supporters, event_ids = c.supporters, c.event_ids
            claim_id, version, entry_id = c.claim_id, c.version, c.entry_id
            yield (
                owner,
                rule_of[c.rule.rule_id],
                c.count_key,
                c.source_unit,
                event_ids,
                instant_text(c.effective_at),
                c.reason,
                # most claims: supported by the events they cite, and their entry id the one
                # their version implies (caps.py `_write`, snapshot_read.py `entry_id_of`);
                # null then, a third of the size. (Nearly every claim cites one event: asked
                # without making a tuple of its supporters.)
                None
                if supporters is None
                or (
                    len(supporters) == 1 and event_ids[0] in supporters
                    if len(event_ids) == 1
                    else tuple(supporters) == event_ids
                )
                else tuple(supporters),
                str(c.applied),
                None
                if entry_id == (claim_id if version <= 1 else f"{claim_id}.{version - 1}")
                else entry_id,
                version,
                claim_id,
            )

    def routes_row(self, routes: Routes) -> tuple[tuple[int, int], ...]:
        found = self._routes_rows.get(id(routes))
        if found is not None and found[0] is routes:
            return found[1]  # made once per tuple: the engine shares one between many
        assessments, rules = self.assessments, self.rules
        row = tuple((assessments[id(a)], rules[(a.rulebook, rule.rule_id)]) for a, rule in routes)
        self._routes_rows[id(routes)] = (routes, row)
        return row

    def tracked_rows(self) -> Iterator[tuple[Any, ...]]:
        claims, routes_row = self.claims, self.routes_row
        for t in self.tracked:
            notice_due, feedbacks, overdue = t.notice_due, t.feedbacks, t.overdue_claims
            if not feedbacks:
                fed: tuple[tuple[str, str], ...] = ()
            elif len(feedbacks) == 1:  # most: without a generator's frame
                ((fid, at),) = feedbacks.items()
                fed = ((fid, instant_text(at)),)
            else:
                fed = tuple((fid, instant_text(at)) for fid, at in feedbacks.items())
            yield (
                t.unit,
                t.kind,
                t.ref,
                t.event_id,
                instant_text(t.at),
                instant_text(t.due),
                instant_text(notice_due) if notice_due is not None else None,
                t.arrival,
                tuple(t.supporters),
                t.year,
                routes_row(t.overdue_routes),
                fed,
                t.status,
                tuple(claims[c] for _, c in overdue) if overdue else (),
            )

    def notice_rows(self) -> Iterator[tuple[Any, ...]]:
        tracked, routes_row = self.tracked, self.routes_row
        for notice in self.notices:
            found = notice.tracked
            yield (
                *notice.key,
                notice.year,
                tuple(notice.postings),
                routes_row(notice.count_routes),
                notice.keep_year,
                tracked[found] if found is not None else None,
            )

    def record_rows(self, by_id: Mapping[str, Record]) -> Iterator[tuple[Any, ...]]:
        claims, notices, tracked = self.claims, self.notices, self.tracked
        for event_id, r in by_id.items():
            counted, notice, feedback_for = r.claims, r.notice, r.feedback_for
            if not counted:
                cited: tuple[int, ...] | None = None if counted is None else ()
            elif len(counted) == 1:  # most records count once: without a comprehension's call
                cited = (claims[counted[0][1]],)
            else:
                cited = tuple([claims[c] for _, c in counted])
            yield (
                event_id,
                r.unit,
                r.type,
                cited,
                notices[notice] if notice is not None else None,
                tracked[feedback_for] if feedback_for is not None else None,
                r.retracted,
            )


_SECOND_ZONE = tuple(f"{s:02d}+08:00" for s in range(60))  # `instant_text`'s seconds


def instant_text(at: datetime) -> str:
    """`at.isoformat()`, made from tables for the engine's instants (+08:00, whole seconds):
    about half the C call's time, which a checkpoint pays ~200k times on the 200k stream.
    Any other instant is the C call's (tests/unit/test_snapshot_rows.py compares the two)."""
    if at.tzinfo is not SHANGHAI or at.microsecond:
        return at.isoformat()
    return minute_text(at) + _SECOND_ZONE[at.second]


def numbered(numbers: Mapping[_K, int], objects: Iterable[_K]) -> Iterator[int]:
    return map(numbers.__getitem__, objects)


__all__ = ["Numbers", "Rows", "instant_text", "numbered"]
