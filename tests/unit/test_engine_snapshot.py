"""The engine's state as plain data (engine/snapshot.py; issue 12 item 4): for any stream S and
any split k, engine(S[:k]) -> snapshot -> JSON text -> restore -> S[k:] emits exactly what
engine(S) emits for S[k:] (entries with their digests and chain values, deadline states,
rejections and duplicates) and ends in the same state."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from engine import Engine, Outcome
from engine.snapshot import SnapshotError, restore, snapshot
from schemas.events import Event, parse_event
from tests.builders import (
    BOOKS,
    REGISTRY,
    SHIPPED_BOOKS,
    SHIPPED_REGISTRY,
    calendar,
    ev,
    tick,
)
from tests.unit import test_engine_golden as golden
from tests.unit import test_engine_properties as props
from tests.unit import test_year_closing as closing
from tracker import demo

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def lines(outcomes: Sequence[Outcome]) -> list[str]:
    """Everything the outcomes say, as the golden test pins it (repr of every field)."""
    return [text for o in outcomes for text in golden.lines_of(o)]


def through_json(engine: Engine, registry: Any, books: Any) -> Engine:
    text = json.dumps(snapshot(engine), ensure_ascii=False, sort_keys=True)
    return restore(json.loads(text), registry, books, calendar())


def split_run(
    make: Any,
    stream: Sequence[Event],
    k: int | Sequence[int],
    registry: Any,
    books: Any,
    now: datetime | None = None,
) -> None:
    """The stream applied straight, and resumed from a snapshot (through JSON) taken after its
    first k events, for each k: the resumed engine emits what the straight one emits after k,
    and ends in the same state. One straight run serves every k."""
    splits = {k} if isinstance(k, int) else set(k)
    straight = make()
    resumed: dict[int, Engine] = {}
    outcomes = []
    for i, event in enumerate(stream):
        if i in splits:
            resumed[i] = through_json(straight, registry, books)
        outcomes.append(straight.apply(event, now=now))
    if len(stream) in splits:
        resumed[len(stream)] = through_json(straight, registry, books)
    end = snapshot(straight)
    deadlines = [golden.canonical(s) for s in straight.open_deadlines()]
    for at, engine in resumed.items():
        tail = [engine.apply(e, now=now) for e in stream[at:]]
        assert lines(tail) == lines(outcomes[at:]), f"resumed after {at}"
        assert [golden.canonical(s) for s in engine.open_deadlines()] == deadlines
        assert snapshot(engine) == end


# -- dense, realistic streams (the golden streams) -------------------------------------------


def demo_stream(seed: int, years: tuple[int, ...], scale: float, events: int) -> list[Event]:
    registry = load_registry(DEMO_REGISTRY)
    gen = demo.generate(registry, seed=seed, years=years, scale=scale)
    return [parse_event(line) for line in itertools.islice(demo.lines(gen), events)]


@pytest.fixture(scope="module")
def demo_config() -> tuple[Any, Any]:
    return load_registry(DEMO_REGISTRY), load_rulebooks()


def _demo_engine(config: tuple[Any, Any]) -> Iterator[Engine]:
    while True:
        yield Engine(config[0], config[1], official_calendar())


@pytest.mark.parametrize(
    "name,splits",
    [
        # years close between the splits: 2017 events, then 2018's, then 2020's
        ("years", (1, 5_000, 13_000, 19_000, 26_000)),
        # caps filled, capped entries, headroom freed by retractions after the split
        ("dense", (2_000, 12_500, 24_000)),
    ],
)
def test_a_demo_stream_resumed_at_any_split_emits_what_it_emits_straight(
    name: str, splits: tuple[int, ...], demo_config: tuple[Any, Any]
) -> None:
    seed, years, scale, events, _, _, _ = golden.GOLDEN[name]
    stream = demo_stream(seed, years, scale, events)
    split_run(lambda: next(_demo_engine(demo_config)), stream, splits, *demo_config)


def test_the_scrambled_stream_resumed_keeps_its_rejections_and_duplicates(
    demo_config: tuple[Any, Any],
) -> None:
    seed, years, scale, events, _, _, _ = golden.GOLDEN["scrambled"]
    registry = demo_config[0]
    gen = demo.generate(registry, seed=seed, years=years, scale=scale)
    raw, now = golden.scramble(list(itertools.islice(demo.lines(gen), events)))
    stream = [parse_event(line) for line in raw]
    engines = _demo_engine(demo_config)
    split_run(lambda: next(engines), stream, (3_000, 9_000, 16_000), *demo_config, now=now)


# -- the cases the split must carry, spelled out -------------------------------------------------


def test_what_crosses_the_split() -> None:
    notice = ev("vuln.notice", "2018-03-01T10:00", unit="fz", notice_id="V1", system="s")
    finding = ev("mlps.finding", "2018-03-02T10:00", unit="fz.gl", system="OA")
    other = ev("mlps.finding", "2018-03-02T11:00", unit="fz.gl", system="web")
    stream = [
        notice,
        finding,
        other,
        ev("outreach.notice", "2018-03-03T09:00", unit="fz", notice_id="O1", terminals=["a"]),
        # after the split: feedback to the notice before it, a retraction of an event before it,
        # duplicates of events before it, and a clock that closes 2017 and later 2018
        ev("vuln.feedback", "2018-03-04T10:00", unit="fz", notice_id="V1"),
        ev(
            "event.retracted",
            "2018-03-05T10:00",
            unit="fz.gl",
            target_event_id=finding.event_id,
            reason="error",
        ),
        finding,
        notice,
        tick("2019-01-02T00:00"),
        ev("mlps.finding", "2019-02-01T10:00", unit="fz.gl", system="OA"),
        tick("2020-01-02T00:00"),
        other,  # its year is closed by now: rejected, not a duplicate
        ev("vuln.feedback", "2020-03-04T10:00", unit="fz", notice_id="V1"),
    ]
    splits = range(len(stream) + 1)
    split_run(lambda: Engine(REGISTRY, BOOKS, calendar()), stream, splits, REGISTRY, BOOKS)


# -- any stream, any split ---------------------------------------------------------------------


@PROPERTY
@given(props.streams(), st.data())
def test_any_stream_resumed_at_any_split(stream: list[Event], data: st.DataObject) -> None:
    k = data.draw(st.integers(0, len(stream)))
    split_run(lambda: Engine(REGISTRY, BOOKS, calendar()), stream, k, REGISTRY, BOOKS)


@PROPERTY
@given(closing.streams(), st.data())
def test_any_stream_over_closing_years_resumed_at_any_split(
    stream: list[Event], data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, len(stream)))
    split_run(
        lambda: Engine(SHIPPED_REGISTRY, SHIPPED_BOOKS, calendar()),
        stream,
        k,
        SHIPPED_REGISTRY,
        SHIPPED_BOOKS,
    )


# -- a snapshot is untrusted input --------------------------------------------------------------


def _small_state() -> dict[str, Any]:
    """A snapshot with a row in every table: notices with deadlines, claims, records."""
    stream = [
        ev("vuln.notice", "2018-03-01T10:00", unit="fz", notice_id="V1", system="s"),
        ev("mlps.finding", "2018-03-02T10:00", unit="fz.gl", system="OA"),
        ev("outreach.notice", "2018-03-03T09:00", unit="fz", notice_id="O1", terminals=["a"]),
        ev("vuln.feedback", "2018-03-04T10:00", unit="fz", notice_id="V1"),
    ]
    eng = Engine(REGISTRY, BOOKS, calendar())
    for e in stream:
        eng.apply(e)
    return json.loads(json.dumps(snapshot(eng)))


def _restore(plain: object) -> Engine:
    return restore(plain, REGISTRY, BOOKS, calendar())


def _set(plain: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(plain)
    target: Any = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


NEGATIVE_USED = object()  # the caps the first assessment used, each at -1
# path in the snapshot, the value put there, what the error says
MALFORMED: list[tuple[tuple[Any, ...], Any, str]] = [
    (("format",), "tracker-engine-state/0", "format"),  # another format
    (("config",), "0" * 64, "another registry"),  # made under another configuration
    (("retain_years",), "1", "retain_years"),  # a number as text
    (("watermark",), "yesterday", "watermark"),  # not an instant
    (("watermark",), "2018-03-04T10:00:00", "offset"),  # an instant without its offset
    (("assessments", 0, 0), "nowhere", "unknown unit"),  # a unit not in the registry
    (("assessments", 0, 2), "other-book", "is not assessed under"),  # an unknown rulebook
    (("assessments", 0, 3), {"no-such-cap": "1"}, "unknown cap"),  # a cap the book lacks
    (("assessments", 0, 3), NEGATIVE_USED, "non-negative"),  # negative points used
    (("assessments", 0, 6), "not-a-hash", "chain value"),  # a chain value that is not one
    (("rules", 0, 1), "x/1/none", "unknown rule"),  # a rule the book lacks
    (("rules", 0, 0), "other-book", "unknown rule"),  # a rulebook the registry does not use
    (("claims", 0, 1), "x/1/none", "out of its table"),  # a rule named, not referred to
    (("claims", 0, 8), "NaN", "non-negative"),  # points that are no amount
    (("claims", 0, 8), "-0.5", "non-negative"),  # negative points
    (("claims", 0, 8), "1000", "beyond"),  # more applied than the rule asks
    (("claims", 0, 0), 99, "out of its table"),  # a reference to no assessment
    (("claims", 0), [0, 1], "fields"),  # a row cut short
    (("tracked", 0, 12), "lost", "status"),  # an unknown status
    (("notices", 0, 1), "mlps.finding", "posts no notice"),  # an event type with no notice
    (("notices", 0, 7), -1, "out of its table"),  # a negative reference
    (("records",), {"2018": []}, "not a list"),  # an object for a list
    (("records", 0, 1, 0, 6), "yes", "boolean"),  # retracted as text
    (("queue",), None, "queue"),  # no queue
]


@pytest.mark.parametrize("path,value,says", MALFORMED)
def test_a_malformed_snapshot_is_a_clear_error(
    path: tuple[Any, ...], value: Any, says: str
) -> None:
    plain = _small_state()
    _restore(plain)  # the snapshot as made restores
    if value is NEGATIVE_USED:
        value = {cap: "-1" for cap in plain["assessments"][0][3]}
        assert value
    with pytest.raises(SnapshotError, match=says):
        _restore(_set(plain, path, value))


def test_not_an_object_is_a_clear_error() -> None:
    for plain in (None, [], "state", 1):
        with pytest.raises(SnapshotError):
            _restore(plain)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.text(max_size=8),
    st.sampled_from(["-1", "1e9", "Infinity", "2018-01-01T00:00:00+08:00", "fz", "gat"]),
    st.lists(st.integers(-1, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_field_replaced_by_junk_restores_or_is_a_clear_error(data: st.DataObject) -> None:
    plain = _small_state()
    path = data.draw(st.sampled_from(list(_leaves(plain))))
    broken = _set(plain, path, data.draw(JUNK))
    try:
        eng = _restore(broken)
    except SnapshotError:
        return
    eng.apply(tick("2019-06-01T00:00"))  # what restores is an engine that runs
