"""The store's insert columns (sinks/clickhouse_columns.py): DateTime64 instants as the very ticks
the driver's own conversion makes of them, or left to the driver where that is not certain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from clickhouse_connect.datatypes.registry import get_from_name
from hypothesis import given
from hypothesis import strategies as st

from engine.clock import SHANGHAI
from sinks.clickhouse_columns import as_columns, ticks

TYPES = {
    per_second: get_from_name(f"DateTime64({scale}, 'Asia/Shanghai')")
    for scale, per_second in ((0, 1), (3, 1000), (6, 1_000_000))
}


def _driver(values: list[Any], per_second: int) -> list[int | None]:
    kind = TYPES[per_second]
    return [None if v is None else kind._datetime64_ticks(v) for v in values]


EDGES = [
    datetime(2018, 3, 1, 10, 0, tzinfo=SHANGHAI),  # a plain instant
    datetime(1970, 1, 1, 8, 0, tzinfo=SHANGHAI),  # the epoch itself: tick 0
    datetime(1970, 1, 1, 7, 59, 59, 999_999, tzinfo=SHANGHAI),  # a microsecond before it
    datetime(1960, 6, 30, 12, 0, 0, 500, tzinfo=SHANGHAI),  # before the epoch: floors down
    datetime(1900, 1, 1, 0, 0, tzinfo=SHANGHAI),  # DateTime64's first day
    datetime(2299, 12, 31, 23, 59, 59, 999_999, tzinfo=SHANGHAI),  # its last instant
    datetime(2024, 2, 29, 23, 59, 59, 999_500, tzinfo=SHANGHAI),  # leap day, sub-millisecond
    datetime(2021, 12, 31, 16, 0, 0, 999, tzinfo=SHANGHAI),  # new year in UTC, 999 us
]


@pytest.mark.parametrize("per_second", sorted(TYPES))
def test_the_edges_tick_as_the_driver_ticks_them(per_second: int) -> None:
    assert ticks(EDGES, per_second) == _driver(EDGES, per_second)


@pytest.mark.parametrize(
    "zone",
    [
        UTC,  # the meta table's now(UTC)
        timezone(timedelta(hours=-5)),  # west of UTC: the offset is added, not taken
        timezone(timedelta(hours=5, minutes=45)),  # a quarter-hour offset
        timezone(timedelta(seconds=-3661)),  # whole seconds (a local mean time's kind)
    ],
)
def test_any_fixed_offset_zone_ticks_as_the_driver(zone: timezone) -> None:
    values = [e.astimezone(zone) for e in EDGES[:4]]
    assert ticks(values, 1000) == _driver(values, 1000)


def test_missing_instants_stay_missing() -> None:
    values = [None, EDGES[0], None, EDGES[3], EDGES[0]]
    assert ticks(values, 1000) == _driver(values, 1000)
    assert ticks([None, None], 1000) == [None, None]  # nothing to tick: the driver's as before


def test_repeated_instants_tick_once_each_and_in_place() -> None:
    values = [EDGES[i % 3] for i in range(600)]  # most of them repeats: the distinct-once path
    assert ticks(values, 1000) == _driver(values, 1000)


class Stamp(datetime):
    """A datetime subclass (as pandas' Timestamp is): the driver knows its own of those."""


LEFT_TO_THE_DRIVER = [
    [datetime(2018, 3, 1, 10, 0)],  # naive: read in this machine's zone by the driver
    [EDGES[0], EDGES[0].astimezone(UTC)],  # two zones in one column
    [datetime(2018, 3, 1, tzinfo=ZoneInfo("Asia/Shanghai"))],  # a zone with rules, not an offset
    [datetime(2018, 3, 1, tzinfo=timezone(timedelta(microseconds=1)))],  # a sub-second offset
    [Stamp(2018, 3, 1, tzinfo=SHANGHAI)],  # a subclass
    [datetime(3000, 1, 1, tzinfo=SHANGHAI)],  # beyond 2**34 s, where floats may round up
    ["2018-03-01T10:00:00+08:00"],  # text: the driver parses it
    [],  # nothing at all
]


@pytest.mark.parametrize("column", LEFT_TO_THE_DRIVER)
def test_what_is_not_certain_is_left_to_the_driver(column: list[Any]) -> None:
    assert ticks(column, 1000) is column


def test_rows_become_columns_with_only_the_instants_ticked() -> None:
    kinds = [get_from_name("String"), TYPES[1000], get_from_name("Nullable(DateTime64(3))")]
    rows = [("a", EDGES[0], None), ("b", EDGES[1], EDGES[2])]
    assert as_columns(rows, kinds) == [
        ("a", "b"),
        _driver([EDGES[0], EDGES[1]], 1000),
        [None, _driver([EDGES[2]], 1000)[0]],
    ]


@given(
    st.lists(
        st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2299, 12, 30)),
        min_size=1,
        max_size=40,
    ),
    st.integers(min_value=-14 * 3600, max_value=14 * 3600),
    st.sampled_from(sorted(TYPES)),
)
def test_every_instant_ticks_as_the_driver_ticks_it(
    naive: list[datetime], offset_seconds: int, per_second: int
) -> None:
    zone = timezone(timedelta(seconds=offset_seconds))
    values = [v.replace(tzinfo=zone) for v in naive]
    assert ticks(values, per_second) == _driver(values, per_second)
    repeated = values * 3  # the distinct-once path
    assert ticks(repeated, per_second) == _driver(repeated, per_second)
