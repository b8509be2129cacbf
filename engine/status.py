"""The `tracker status` objects (spec section 6), computed from what any store can return."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from engine.clock import iso
from schemas.ledger import DeadlineState, DeadlineView, IndicatorStatus, UnitYearStatus
from schemas.registry import Registry
from schemas.rulebook import Rulebook

ZERO = Decimal(0)


def build_status(
    registry: Registry,
    rulebooks: Mapping[str, Rulebook],
    totals: Mapping[tuple[str, int, str], Decimal],
    deadlines: Iterable[DeadlineState],
    event_unit_years: Iterable[tuple[str, int]],
    *,
    unit: str | None = None,
    year: int | None = None,
) -> list[UnitYearStatus]:
    """One object per unit and year with an assessment or any accepted event, sorted."""
    keys: set[tuple[str, int]] = set(event_unit_years)
    for u in registry.units:
        keys.update((u.id, a.year) for a in registry.assessments if a.tier == u.tier)
    by_unit_year: dict[tuple[str, int], list[DeadlineState]] = {}
    for d in deadlines:
        by_unit_year.setdefault((d.unit, d.year), []).append(d)
        keys.add((d.unit, d.year))
    out = []
    for unit_id, yr in sorted(keys):
        if (unit is not None and unit_id != unit) or (year is not None and yr != year):
            continue
        found = registry.unit(unit_id)
        book_id = registry.rulebook_for(found.tier, yr) if found is not None else None
        book = rulebooks.get(book_id) if book_id is not None else None
        indicators = tuple(
            IndicatorStatus(
                id=ind.id,
                name=ind.name,
                max=ind.max_points,
                deducted=totals.get((unit_id, yr, ind.id), ZERO),
                remaining=ind.max_points - totals.get((unit_id, yr, ind.id), ZERO),
            )
            for ind in (book.indicators if book is not None else ())
        )
        views = tuple(
            DeadlineView(ref=d.ref, due=iso(d.due), status=d.status, notice_due=_shown_due(d))
            for d in sorted(
                by_unit_year.get((unit_id, yr), ()), key=lambda d: (d.noticed_at, d.ref)
            )
        )
        out.append(
            UnitYearStatus(
                unit=unit_id,
                year=yr,
                rulebook=book_id if book is not None else None,
                deducted=sum((i.deducted for i in indicators), ZERO),
                indicators=indicators,
                deadlines=views,
            )
        )
    return out


def _shown_due(state: DeadlineState) -> str | None:
    """The notice's own due, when it is not the instant that judges it (contract 5.7)."""
    if state.notice_due is None or state.notice_due == state.due:
        return None
    return iso(state.notice_due)
