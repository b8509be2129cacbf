"""The engine's state as plain data, and back (issue 12 item 4: a checkpoint, not a replay).

`snapshot(engine)` gives JSON-able data only (dicts, lists, strings, ints, None; points as
decimal text, instants as ISO 8601 text); `restore(plain, registry, rulebooks, calendar)` builds
an engine that continues exactly as the one snapshotted would: every later event gives the same
outcomes, entries, digests and chain values. Never pickled: what `restore` reads comes from a
store's rows, so it is untrusted input and checked field by field; anything wrong is a
`SnapshotError` with what and where, never a failure deep inside the engine later.

The engine's state is a graph (a claim is shared by its assessment, the record of the event
that counted it and a deadline's overdue claims; a notice and its deadline share their
postings), so the snapshot is a set of numbered tables, objects referring to each other by
their index. What the engine can derive (compiled rules, the route cache, claims by key,
canonical-form prefixes) is not kept: it is made again from the registry and the rulebooks,
which the snapshot names by a fingerprint so that it never restores under other ones.

A checkpoint's writer takes `streamed(engine)`: the same state, its tables `Rows` made a row at
a time as they are encoded (sinks/checkpoint.py), so that writing a big state never holds its
rows all at once; the text is the one `snapshot`'s plain data makes.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import InvalidOperation
from functools import partial
from typing import Any, TypeVar

from engine.calendar import WorkCalendar
from engine.caps import Assessment, Claim
from engine.compiled import CompiledRule
from engine.core import Engine
from engine.deadlines import Tracked
from engine.notices import Notice
from engine.outcome import ConfigError, Record
from engine.snapshot_read import SnapshotError, entry_id_of, fill
from schemas.registry import Registry
from schemas.rulebook import Rulebook

FORMAT = "tracker-engine-state/2"
_K = TypeVar("_K")


def fingerprint(
    registry: Registry, rulebooks: Mapping[str, Rulebook], calendar: WorkCalendar
) -> str:
    """What the state depends on besides the events: the registry, the rulebooks it uses and
    the working-day calendar (due instants are judged on it)."""
    used = sorted({a.rulebook for a in registry.assessments})
    h = hashlib.sha256(registry.model_dump_json().encode("utf-8"))
    for book_id in used:
        book = rulebooks.get(book_id)
        h.update(b"\x1e" + (book.model_dump_json().encode("utf-8") if book else b"~"))
    for days in (calendar.years, calendar.holidays, calendar.workdays):
        h.update(b"\x1e" + ",".join(sorted(str(d) for d in days)).encode("ascii"))
    return h.hexdigest()


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile: reading or writing a big state makes millions of
    objects, each allocation burst starting a collection that walks the whole heap (on a
    1M-event store's state: 3-4x the CPU of the work itself). They make no garbage cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# -- snapshot ---------------------------------------------------------------------------------


class Rows:
    """A table of the snapshot made row by row as it is read (`streamed`), so that a writer
    holds a few rows at a time, never the whole state's (issue 12 item 4: at 1M events of one
    year the rows built at once were +650 MiB above the live engine). `nested`: its rows are
    lists holding Rows themselves (an assessment's claims and counting keys, a year's records),
    to be opened one by one. Read it before the engine applies another event: it reads the
    engine as it is then."""

    __slots__ = ("_make", "nested")

    def __init__(self, make: Callable[[], Iterator[Any]], nested: bool = False) -> None:
        self._make = make
        self.nested = nested

    def __iter__(self) -> Iterator[Any]:
        return self._make()

    def plain(self) -> list[Any]:
        if self.nested:
            return [[v.plain() if isinstance(v, Rows) else v for v in row] for row in self]
        return list(self)


class _Numbers:
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
        for r, _ in a.generations:
            self.rule(a.rulebook, r)
        for c in a.claims:
            self.claim(a, c)
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

    def routes(self, routes: tuple[tuple[Assessment, CompiledRule], ...]) -> None:
        for a, rule in routes:
            self.assessment(a)
            self.rule(a.rulebook, rule.rule_id)

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
        """Every shared object of the engine, in the order the tables' rows list them."""
        for a in engine._assessments.values():
            if a is not None:
                self.assessment(a)
        for by_key in engine._notices.values():
            for notice in by_key.values():
                self.notice(notice)
        for by_id in engine._records.values():
            for r in by_id.values():
                if r.claims is not None:
                    for a, c in r.claims:
                        self.claim(a, c)
                if r.notice is not None:
                    self.notice(r.notice)
                if r.feedback_for is not None:
                    self.tracked_(r.feedback_for)
        for _, _, tracked in engine._deadlines.queue._heap:
            self.tracked_(tracked)

    # the rows, from the numbers (every object they refer to is numbered by now)

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
                Rows(partial(_numbered, self.claims, a.claims)),
            ]

    def generation_rows(self, a: Assessment) -> Iterator[list[Any]]:
        rules, book = self.rules, a.rulebook
        for (r, key), g in a.generations.items():
            yield [rules[(book, r)], key, g]

    def claim_rows(self) -> Iterator[list[Any]]:
        assessments, rules = self.assessments, self.rules
        for c, a in zip(self.claims, self.claim_owner, strict=True):
            supporters = tuple(c.supporters)
            yield [
                assessments[id(a)],
                rules[(a.rulebook, c.rule.rule_id)],
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

    def routes_row(self, routes: tuple[tuple[Assessment, CompiledRule], ...]) -> list[Any]:
        return [
            [self.assessments[id(a)], self.rules[(a.rulebook, rule.rule_id)]] for a, rule in routes
        ]

    def tracked_rows(self) -> Iterator[list[Any]]:
        claims = self.claims
        for t in self.tracked:
            yield [
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
                self.routes_row(t.overdue_routes),
                [[fid, at.isoformat()] for fid, at in t.feedbacks.items()],
                t.status,
                [claims[c] for _, c in t.overdue_claims],
            ]

    def notice_rows(self) -> Iterator[list[Any]]:
        tracked = self.tracked
        for notice in self.notices:
            yield [
                *notice.key,
                notice.year,
                list(notice.postings),
                self.routes_row(notice.count_routes),
                notice.keep_year,
                tracked[notice.tracked] if notice.tracked is not None else None,
            ]

    def record_rows(self, by_id: Mapping[str, Record]) -> Iterator[list[Any]]:
        claims, notices, tracked = self.claims, self.notices, self.tracked
        for event_id, r in by_id.items():
            yield [
                event_id,
                r.unit,
                r.type,
                [claims[c] for _, c in r.claims] if r.claims is not None else None,
                notices[r.notice] if r.notice is not None else None,
                tracked[r.feedback_for] if r.feedback_for is not None else None,
                r.retracted,
            ]


def snapshot(engine: Engine) -> dict[str, Any]:
    """The engine's state between two events, as plain data (module docstring)."""
    with gc_paused():
        state = streamed(engine)
        return {k: v.plain() if isinstance(v, Rows) else v for k, v in state.items()}


def streamed(engine: Engine) -> dict[str, Any]:
    """`snapshot`, its tables `Rows` made as they are read (the checkpoint writer's: it encodes
    them a slice at a time). Only the numbering of the shared objects is made here, a few tens
    of bytes each; their rows are not. Read it before the engine applies another event."""
    if engine.ledger.entries or engine._deadlines.changed:
        raise SnapshotError("the engine holds output not drained yet: snapshot between events")
    t = _Numbers()
    with gc_paused():
        t.number(engine)
    assessments, notices, tracked = t.assessments, t.notices, t.tracked

    def index() -> Iterator[list[Any]]:
        for (unit, year), a in engine._assessments.items():
            yield [unit, year, assessments[id(a)] if a is not None else None]

    def by_year() -> Iterator[list[Any]]:
        for year, by_key in engine._notices.items():
            yield [year, Rows(partial(_numbered, notices, by_key.values()))]

    def records() -> Iterator[list[Any]]:
        for year, by_id in engine._records.items():
            yield [year, Rows(partial(t.record_rows, by_id))]

    def queue() -> Iterator[int]:
        return _numbered(tracked, (item for _, _, item in engine._deadlines.queue._heap))

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
        "assessments": Rows(t.assessment_rows, nested=True),
        "assessment_index": Rows(index),
        "claims": Rows(t.claim_rows),
        "tracked": Rows(t.tracked_rows),
        "notices": Rows(t.notice_rows),
        "notices_by_year": Rows(by_year, nested=True),
        "records": Rows(records, nested=True),
        "queue": Rows(queue),
    }


def _numbered(numbers: Mapping[_K, int], objects: Iterable[_K]) -> Iterator[int]:
    return (numbers[o] for o in objects)


def _text(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


# -- restore ----------------------------------------------------------------------------------


def restore(
    plain: object,
    registry: Registry,
    rulebooks: Mapping[str, Rulebook],
    calendar: WorkCalendar,
) -> Engine:
    """An engine in the state `snapshot` gave, under this configuration (which must be the
    one it was made under). Every field is checked: a SnapshotError names what is wrong."""
    if not isinstance(plain, dict):
        raise SnapshotError("the engine state is not an object")
    if plain.get("format") != FORMAT:
        raise SnapshotError(f"unknown engine state format {plain.get('format')!r}")
    if plain.get("config") != fingerprint(registry, rulebooks, calendar):
        raise SnapshotError(
            "the engine state was made under another registry, rulebooks or calendar"
        )
    try:
        engine = Engine(registry, rulebooks, calendar, retain_years=_int(plain, "retain_years"))
    except ConfigError as refused:
        raise SnapshotError(str(refused)) from None
    try:
        with gc_paused():
            fill(engine, plain)
    except SnapshotError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, InvalidOperation) as exc:
        # a safety net: the reader checks what it reads, this only words what it missed
        raise SnapshotError(f"malformed engine state ({type(exc).__name__}: {exc})") from None
    return engine


def _int(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SnapshotError(f"{name}: not a non-negative integer")
    return value


__all__ = [
    "FORMAT",
    "Rows",
    "SnapshotError",
    "fingerprint",
    "gc_paused",
    "restore",
    "snapshot",
    "streamed",
]
