"""The audit report's chart data: each indicator's remaining points over effective time (pure).

The ledger is append-only: a retraction or an in-time feedback appends a reversal, and capped
entries freed by a retraction are appended again, dated back at their original instant. Summing
the entries in effective-time order would therefore dip below zero between a back-dated
re-evaluation and the later reversal of its predecessor. The chart shows instead what stands now:
each reversal is folded into the entry it reverses, so a retracted deduction is gone from the
line and a re-evaluated one counts at its own instant. The line ends exactly at the indicator's
maximum minus the sum of every applied amount, the number `tracker status` shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from schemas.ledger import LedgerEntry

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class IndicatorLine:
    """What the chart needs of a rulebook indicator."""

    indicator: str
    name: str
    max_points: Decimal


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    remaining: Decimal


@dataclass(frozen=True, slots=True)
class Series:
    indicator: str
    name: str
    max_points: Decimal
    points: tuple[Point, ...]  # the start, then one per instant at which the remainder changes


def standing_amounts(entries: Iterable[LedgerEntry]) -> list[tuple[LedgerEntry, Decimal]]:
    """Every entry that is not a reversal of a listed entry, with what it deducts now: its own
    applied amount plus those of the reversals that point at it (through chains of reversals).
    A reversal whose entry is not listed stands on its own, so nothing is lost from the sum."""
    listed = list(entries)
    by_id = {e.entry_id: e for e in listed}
    amounts: dict[str, Decimal] = {}
    for e in listed:
        root = _root(e, by_id)
        amounts[root.entry_id] = amounts.get(root.entry_id, ZERO) + e.applied
    return [(e, amounts[e.entry_id]) for e in listed if e.entry_id in amounts]


def _root(entry: LedgerEntry, by_id: dict[str, LedgerEntry]) -> LedgerEntry:
    seen = {entry.entry_id}
    while entry.reverses is not None and entry.reverses in by_id:
        entry = by_id[entry.reverses]
        if entry.entry_id in seen:  # the store's rows are untrusted: a cycle ends the walk
            break
        seen.add(entry.entry_id)
    return entry


def remaining_series(
    entries: Iterable[LedgerEntry], lines: Sequence[IndicatorLine], *, start: datetime
) -> tuple[Series, ...]:
    """One series per indicator, in the rulebook's order, starting at `start` at the maximum."""
    standing = standing_amounts(entries)
    out = []
    for line in lines:
        steps: dict[datetime, Decimal] = {}
        for e, amount in standing:
            if e.indicator == line.indicator and amount != ZERO:
                steps[e.effective_at] = steps.get(e.effective_at, ZERO) + amount
        remaining = line.max_points
        points = [Point(start, remaining)]
        for when in sorted(steps):
            if steps[when] == ZERO:  # deductions that cancel at one instant draw no step
                continue
            remaining -= steps[when]
            if when <= start:  # dated before the year (not produced by the engine): fold in
                points[0] = Point(start, remaining)
            else:
                points.append(Point(when, remaining))
        out.append(Series(line.indicator, line.name, line.max_points, tuple(points)))
    return tuple(out)
