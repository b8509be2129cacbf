"""What the tracker showed at an instant of event time, cut from the store's recorded outputs.

The definition, and where it can differ from a replay, is in docs/semantics.md ("As of an
instant"). In short, at event time T the tracker shows the outputs of every step whose event
time is at or before T: the entries and deadline states produced by the events dated at or
before T, and by the clock passing the due instants strictly before T. Each output records
that instant: a ledger entry at its `effective_at` unless the store's `EntrySeen` row says
otherwise; a deadline state at its `updated_at`, strictly after it for the state the clock
made by passing the due (`overdue` dated at the due instant itself).

This module holds the cut over rows already read (the in-memory store and the tests use it);
the ClickHouse store does the same in SQL (sinks/clickhouse_as_of.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from schemas.ledger import DeadlineState, EntrySeen, LedgerEntry


def shown(seen_at: datetime, after: bool, at: datetime) -> bool:
    """Whether an output recorded at `seen_at` (`after`: only strictly after it) shows at `at`."""
    return seen_at < at or (seen_at == at and not after)


def entry_shown(entry: LedgerEntry, seen: EntrySeen | None, at: datetime) -> bool:
    if seen is None:
        return entry.effective_at <= at
    return shown(seen.seen_at, seen.after, at)


def cut_ledger(
    entries: Iterable[LedgerEntry], seen: Mapping[str, EntrySeen], at: datetime
) -> list[LedgerEntry]:
    """The entries shown at `at`, in their order. A reversal shows only with the entry it
    reverses: the two are one fact (a feedback dated before a due it arrived after reverses an
    overdue deduction that, at an instant before the due, did not exist yet)."""
    rows = list(entries)
    ids = {e.entry_id for e in rows if entry_shown(e, seen.get(e.entry_id), at)}
    return [e for e in rows if e.entry_id in ids and (e.reverses is None or e.reverses in ids)]


def state_shown(state: DeadlineState, at: datetime) -> bool:
    """A deadline state shows from its `updated_at` on, the one the clock made by passing the
    due (status `overdue`, dated at the due) only strictly after it, and none before its
    notice was posted."""
    expiry = state.status == "overdue" and state.updated_at == state.due
    return state.noticed_at <= at and shown(state.updated_at, expiry, at)


def cut_deadlines(history: Iterable[DeadlineState], at: datetime) -> list[DeadlineState]:
    """Per notice, its latest state shown at `at`, sorted like `StoreReader.deadlines`."""
    latest: dict[tuple[str, str, str], DeadlineState] = {}
    for state in history:
        if not state_shown(state, at):
            continue
        key = (state.unit, state.kind, state.ref)
        old = latest.get(key)
        if old is None or state.version > old.version:
            latest[key] = state
    return [latest[k] for k in sorted(latest)]


def totals_of(entries: Iterable[LedgerEntry]) -> dict[tuple[str, int, str], Decimal]:
    out: dict[tuple[str, int, str], Decimal] = {}
    for e in entries:
        key = (e.unit, e.year, e.indicator)
        out[key] = out.get(key, Decimal(0)) + e.applied
    return out


@dataclass(frozen=True)
class RowsAsOf:
    """An `AsOfView` over rows held in memory (the in-memory store)."""

    at: datetime
    entries: tuple[LedgerEntry, ...]
    seen: Mapping[str, EntrySeen]
    history: tuple[DeadlineState, ...]
    unit_years: Mapping[tuple[str, int], datetime]  # the earliest `at` of an event of each

    def ledger(self, unit: str | None = None, year: int | None = None) -> list[LedgerEntry]:
        rows = [e for e in self.entries if _wanted(e.unit, e.year, unit, year)]
        rows.sort(key=lambda e: (e.unit, e.year, e.seq))
        return cut_ledger(rows, self.seen, self.at)

    def deadlines(self, unit: str | None = None, year: int | None = None) -> list[DeadlineState]:
        return cut_deadlines(
            (d for d in self.history if _wanted(d.unit, d.year, unit, year)), self.at
        )

    def totals(
        self, unit: str | None = None, year: int | None = None
    ) -> dict[tuple[str, int, str], Decimal]:
        return totals_of(self.ledger(unit, year))

    def event_unit_years(
        self, unit: str | None = None, year: int | None = None
    ) -> set[tuple[str, int]]:
        return {
            k
            for k, first in self.unit_years.items()
            if first <= self.at and _wanted(k[0], k[1], unit, year)
        }


def _wanted(u: str, y: int, unit: str | None, year: int | None) -> bool:
    return (unit is None or u == unit) and (year is None or y == year)
