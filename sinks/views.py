"""Views a reader builds from any store: what `status` shows, the same for the CLI, the worker's
read views and the HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from engine.status import build_status
from schemas.ledger import UnitYearStatus
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import StoreReader


def status_rows(
    reader: StoreReader,
    config: tuple[Registry, Mapping[str, Rulebook]],
    unit: str | None = None,
    year: int | None = None,
    *,
    as_of: datetime | None = None,
) -> list[UnitYearStatus]:
    """The contract's status objects from the store's totals and deadlines, under the registry
    and rulebooks that produced them (`config`, as the store recorded it); `as_of`: as the
    tracker showed them at that instant of event time (sinks/as_of.py)."""
    registry, books = config
    if as_of is not None:
        view = reader.as_of(as_of)
        return build_status(
            registry,
            books,
            view.totals(unit, year),
            view.deadlines(unit, year),
            view.event_unit_years(unit, year),
            unit=unit,
            year=year,
        )
    return build_status(
        registry,
        books,
        reader.totals(),
        reader.deadlines(unit=unit, year=year),
        reader.event_unit_years(),
        unit=unit,
        year=year,
    )
