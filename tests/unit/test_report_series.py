"""The report's points-over-time series from ledger entries (tracker/report_series.py, pure)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from engine.clock import SHANGHAI
from schemas.ledger import LedgerEntry
from tracker.report_series import IndicatorLine, remaining_series, standing_amounts

START = datetime(2018, 1, 1, tzinfo=SHANGHAI)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text + "+08:00")


def entry(
    entry_id: str,
    applied: str,
    when: str,
    *,
    indicator: str = "net",
    reverses: str | None = None,
    seq: int = 0,
) -> LedgerEntry:
    return LedgerEntry(
        entry_id=entry_id,
        seq=seq,
        unit="u",
        year=2018,
        rulebook="b",
        indicator=indicator,
        item="1",
        rule="vuln.notice",
        count_key=entry_id,
        source_unit="u",
        event_ids=("e",),
        requested=abs(Decimal(applied)) or Decimal(1),
        applied=Decimal(applied),
        capped=False,
        reverses=reverses,
        effective_at=at(when),
        reason="r",
    )


LINES = (IndicatorLine("net", "网络", Decimal(3)), IndicatorLine("mlps", "等保", Decimal(2)))

CASES = [
    # (why, entries, expected points of "net" as (instant, remaining))
    ("no entries: one point at the year's start, at the maximum", [], [(START, "3")]),
    (
        "two deductions at two instants: a step each",
        [entry("a", "1", "2018-02-01T10:00:00"), entry("b", "0.5", "2018-03-01T10:00:00")],
        [(START, "3"), (at("2018-02-01T10:00:00"), "2"), (at("2018-03-01T10:00:00"), "1.5")],
    ),
    (
        "two entries at the same instant make one step (two terminals of one notice)",
        [entry("a", "0.5", "2018-02-01T10:00:00"), entry("b", "0.5", "2018-02-01T10:00:00")],
        [(START, "3"), (at("2018-02-01T10:00:00"), "2")],
    ),
    (
        "a capped entry with 0 applied changes nothing: no step",
        [entry("a", "3", "2018-02-01T10:00:00"), entry("b", "0", "2018-03-01T10:00:00")],
        [(START, "3"), (at("2018-02-01T10:00:00"), "0")],
    ),
    (
        "a reversed entry and its reversal vanish (retraction, or feedback in time)",
        [
            entry("a", "1", "2018-02-01T10:00:00"),
            entry("b", "1", "2018-02-05T10:00:00"),
            entry("b~r", "-1", "2018-03-10T10:00:00", reverses="b"),
        ],
        [(START, "3"), (at("2018-02-01T10:00:00"), "2")],
    ),
    (
        "a re-evaluated entry dated back at its due instant counts there, never below zero",
        [
            entry("o", "2", "2018-02-05T09:00:00"),
            entry("v", "1", "2018-02-10T10:00:00"),
            entry("d", "0", "2018-02-16T00:00:00"),
            entry("o~r", "-2", "2018-03-10T10:00:00", reverses="o"),
            entry("d~r", "0", "2018-03-10T10:00:00", reverses="d"),
            entry("d.1", "2", "2018-02-16T00:00:00"),
        ],
        [(START, "3"), (at("2018-02-10T10:00:00"), "2"), (at("2018-02-16T00:00:00"), "0")],
    ),
    (
        "a partial reversal leaves the rest standing at the entry's instant",
        [
            entry("a", "1", "2018-02-01T10:00:00"),
            entry("a~r", "-0.4", "2018-04-01T10:00:00", reverses="a"),
        ],
        [(START, "3"), (at("2018-02-01T10:00:00"), "2.4")],
    ),
    (
        "a reversal whose entry is not in the list stands on its own, so the total still holds",
        [
            entry("a", "1", "2018-02-01T10:00:00"),
            entry("x~r", "-0.5", "2018-04-01T10:00:00", reverses="x"),
        ],
        [(START, "3"), (at("2018-02-01T10:00:00"), "2"), (at("2018-04-01T10:00:00"), "2.5")],
    ),
    (
        "other indicators' entries are not in this line",
        [entry("m", "2", "2018-02-01T10:00:00", indicator="mlps")],
        [(START, "3")],
    ),
    (
        "an overdue of a December notice dated in January stays in the notice's year's line",
        [entry("a", "1", "2019-01-05T00:00:00")],
        [(START, "3"), (at("2019-01-05T00:00:00"), "2")],
    ),
]


@pytest.mark.parametrize(("why", "entries", "expected"), CASES, ids=[c[0] for c in CASES])
def test_remaining_series(
    why: str, entries: list[LedgerEntry], expected: list[tuple[datetime, str]]
) -> None:
    series = remaining_series(entries, LINES, start=START)
    assert [s.indicator for s in series] == ["net", "mlps"]
    net = series[0]
    assert [(p.at, p.remaining) for p in net.points] == [(t, Decimal(r)) for t, r in expected]


def test_last_point_is_max_minus_every_applied_amount() -> None:
    """Whatever the reversals, the line ends where `tracker status` says: max - sum(applied)."""
    entries = [
        entry("a", "1", "2018-02-01T10:00:00"),
        entry("b", "0.5", "2018-02-05T10:00:00"),
        entry("b~r", "-0.5", "2018-03-10T10:00:00", reverses="b"),
        entry("c", "0.7", "2018-02-16T00:00:00"),
        entry("m", "2", "2018-05-01T10:00:00", indicator="mlps"),
    ]
    for line in remaining_series(entries, LINES, start=START):
        total = sum((e.applied for e in entries if e.indicator == line.indicator), Decimal(0))
        assert line.points[-1].remaining == line.max_points - total


def test_standing_amounts_fold_reversals_into_their_entries() -> None:
    entries = [
        entry("a", "1", "2018-02-01T10:00:00"),
        entry("a~r", "-1", "2018-03-01T10:00:00", reverses="a"),
        entry("a.1", "0.5", "2018-02-01T10:00:00"),
        entry("a.1~r", "-0.2", "2018-03-02T10:00:00", reverses="a.1"),
    ]
    assert {e.entry_id: amount for e, amount in standing_amounts(entries)} == {
        "a": Decimal(0),
        "a.1": Decimal("0.3"),
    }
