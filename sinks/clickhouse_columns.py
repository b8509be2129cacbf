"""Rows as the columns clickhouse-connect inserts (`column_oriented=True`), each DateTime64 column
already as the integers (ticks) the driver would have made of its instants.

The store's write was a sixth of `tracker ingest`'s time, and the largest part of it that ran in
Python was the driver's per-value `DateTime64._datetime64_ticks`: a method call and
`datetime.timestamp()` (which asks the zone for its offset) per instant. The driver writes an int
column as it is. The store's instants are all in one fixed-offset zone (engine/clock.py
SHANGHAI), so a column's ticks come from each instant's own fields and that one offset, in exact
integer arithmetic; anything else (naive instants, zones with changing offsets, `datetime`
subclasses such as pandas' Timestamp, the driver's "server" reading of naive instants) is left to
the driver as before. Building the columns in one transposition of the rows also spares the
driver its own pivot of them.

Why the ticks are the driver's, bit for bit: the driver computes
`(floor(value.timestamp()) * 10**6 + value.microsecond) * prec // 10**6`, where
`value.timestamp()` is the float nearest to N / 10**6 (N: the instant's microseconds since the
epoch, an int). When N is not a whole second, N / 10**6 is at least 10**-6 below the next whole
second, and below 2**34 s (the year 2514; DateTime64 ends in 2299) the float's rounding error is
under half of that, so its floor is N // 10**6, the whole seconds counted here. The read-back
test (tests/integration/test_store_columns.py) compares the stored bytes of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

from clickhouse_connect import common
from clickhouse_connect.datatypes.special import SimpleAggregateFunction
from clickhouse_connect.datatypes.temporal import DateTime64

_US = 1_000_000  # microseconds a second
_EPOCH_DAY = datetime(1970, 1, 1).toordinal()
_SAFE_SECONDS = 2**34  # see the module's text: beyond it the driver's float floor may differ
_PLAIN = frozenset({datetime, type(None)})
_ZONE = attrgetter("tzinfo")
_SAMPLE = 256  # instants looked at to tell whether a column repeats them


def as_columns(rows: Sequence[Sequence[Any]], types: Sequence[Any]) -> list[Sequence[Any]]:
    """`rows` (of the columns `types` describe) as columns, each DateTime64 one as ticks where
    that is exactly what the driver writes."""
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for i, kind in enumerate(types):
        per_second = _ticks_per_second(kind)
        if per_second is not None:
            columns[i] = ticks(columns[i], per_second)
    return columns


def _ticks_per_second(kind: Any) -> int | None:
    if isinstance(kind, SimpleAggregateFunction):  # unit_years' min: written as its element
        kind = kind.element_type
    if not isinstance(kind, DateTime64) or kind.prec > _US:
        return None
    # "server" reads naive instants in the column's zone: the driver's own path then
    if common.get_setting("naive_datetime_insert") != "local":
        return None
    return int(kind.prec)


def ticks(column: Sequence[Any], per_second: int) -> Sequence[Any]:
    """The driver's ticks of each instant (None stays None: the driver writes it as NULL, as it
    did the missing datetime), or `column` itself when it is not a column of plain datetimes
    in one fixed-offset zone."""
    kinds = set(map(type, column))
    if not column or not kinds <= _PLAIN:
        return column
    nullable = type(None) in kinds
    present = [v for v in column if v is not None] if nullable else column
    zones = set(map(_ZONE, present))
    if len(zones) != 1:
        return column
    (zone,) = zones
    if type(zone) is not timezone:  # naive, or a zone whose offset changes over the year
        return column
    offset = zone.utcoffset(None)
    if offset.microseconds:
        return column
    shift = _EPOCH_DAY * 86_400 + offset.days * 86_400 + offset.seconds
    if nullable or _repeats(present):
        # each distinct instant once: a batch's receipts and deadlines' dues repeat a lot (hashing
        # an instant is cheaper than its ticks); a column of mostly distinct ones is not worth it
        distinct = list(dict.fromkeys(present))
        known = _field_ticks(distinct, shift, per_second)
        by_instant: dict[Any, Any] = dict(zip(distinct, known, strict=True))
        by_instant[None] = None
        out: Sequence[Any] = list(map(by_instant.__getitem__, column))
    else:
        out = known = _field_ticks(present, shift, per_second)
    if known and max(-min(known), max(known)) >= _SAFE_SECONDS * per_second:
        return column
    return out


def _repeats(instants: Sequence[datetime]) -> bool:
    """Whether the first of `instants` are at most half distinct."""
    sample = instants[:_SAMPLE]
    return len(set(sample)) * 2 <= len(sample)


def _field_ticks(instants: Sequence[datetime], shift: int, per_second: int) -> list[int]:
    """The ticks of instants of one zone, `shift` being its epoch's seconds in day-ordinal terms:
    exact integers from the instants' own fields (no offset asked per value)."""
    div = _US // per_second
    return [
        (v.toordinal() * 86_400 + v.hour * 3600 + v.minute * 60 + v.second - shift) * per_second
        + v.microsecond // div
        for v in instants
    ]
