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
rows all at once; the text is the one `snapshot`'s plain data makes. The tables' numbering and
rows are in engine/snapshot_rows.py.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import InvalidOperation
from functools import partial
from typing import Any

from engine.calendar import WorkCalendar
from engine.core import Engine
from engine.outcome import ConfigError
from engine.snapshot_read import SnapshotError, fill
from engine.snapshot_rows import Numbers, Rows, numbered
from schemas.registry import Registry
from schemas.rulebook import Rulebook

FORMAT = "tracker-engine-state/2"


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
    t = Numbers()
    with gc_paused():
        t.number(engine)
    assessments, notices, tracked = t.assessments, t.notices, t.tracked

    def index() -> Iterator[list[Any]]:
        for (unit, year), a in engine._assessments.items():
            yield [unit, year, assessments[id(a)] if a is not None else None]

    def by_year() -> Iterator[list[Any]]:
        for year, by_key in engine._notices.items():
            yield [year, Rows(partial(numbered, notices, by_key.values()))]

    def records() -> Iterator[list[Any]]:
        for year, by_id in engine._records.items():
            yield [year, Rows(partial(t.record_rows, by_id))]

    def queue() -> Iterator[int]:
        return numbered(tracked, (item for _, _, item in engine._deadlines.queue._heap))

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
