"""The snapshot's rows made cheaply (engine/snapshot_rows.py) spell what they spelled before:
an instant's text is `isoformat()`'s, whatever the instant, and the plain snapshot is lists
throughout although the rows are tuples (restore reads lists; the text is the same either way:
tests/unit/test_checkpoint_memory.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Engine
from engine.clock import SHANGHAI
from engine.snapshot import restore, snapshot
from engine.snapshot_rows import instant_text
from tests.builders import BOOKS, REGISTRY, calendar
from tests.unit import test_engine_properties as props

# instants of each kind (row: why)
INSTANTS = [
    datetime(2018, 3, 1, 0, 0, 0, tzinfo=SHANGHAI),  # the engine's: +08:00, whole seconds
    datetime(2018, 12, 31, 23, 59, 59, tzinfo=SHANGHAI),  # the last second of a year
    datetime(5, 1, 2, 3, 4, 5, tzinfo=SHANGHAI),  # a year of one digit: padded to four
    datetime(2018, 3, 1, 8, 30, 0, 1, tzinfo=SHANGHAI),  # a microsecond: the C call's text
    datetime(2018, 3, 1, 8, 30, 0, 500_000, tzinfo=SHANGHAI),
    datetime(2018, 3, 1, 8, 30, tzinfo=UTC),  # another zone
    datetime(2018, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=8))),  # +08:00, not SHANGHAI
    datetime(2018, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=7))),
    datetime(2018, 3, 1, 8, 30),  # naive
]


@pytest.mark.parametrize("at", INSTANTS)
def test_an_instant_is_spelled_as_isoformat_spells_it(at: datetime) -> None:
    assert instant_text(at) == at.isoformat()
    assert instant_text(at) == at.isoformat()  # and again, its day's text made once


ZONES = st.sampled_from([SHANGHAI, UTC, timezone(timedelta(hours=-3, minutes=-30)), None])


@settings(max_examples=500, deadline=None)
@given(st.datetimes(timezones=ZONES), st.booleans())
def test_any_instant_is_spelled_as_isoformat_spells_it(at: datetime, whole: bool) -> None:
    if whole:  # the engine's instants are whole seconds: the tables' case, most often
        at = at.replace(microsecond=0)
    assert instant_text(at) == at.isoformat()


def _tuples(value: Any, where: str = "state") -> list[str]:
    if isinstance(value, tuple):
        return [where]
    if isinstance(value, list):
        return [w for i, v in enumerate(value) for w in _tuples(v, f"{where}[{i}]")]
    if isinstance(value, dict):
        return [w for k, v in value.items() for w in _tuples(v, f"{where}.{k}")]
    return []


@settings(max_examples=40, deadline=None)
@given(props.streams())
def test_the_plain_snapshot_is_lists_throughout_and_restores(stream: list[Any]) -> None:
    engine = Engine(REGISTRY, BOOKS, calendar())
    for event in stream:
        engine.apply(event)
    plain = snapshot(engine)
    assert _tuples(plain) == []
    assert snapshot(restore(plain, REGISTRY, BOOKS, calendar())) == plain
