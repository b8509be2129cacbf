"""What-if replay, the pure part: a registry rewritten so that another rulebook assesses a tier,
the event log re-run through fresh engines under it, and the difference per unit, year and
indicator. The delivery (the store, the scratch store, the CLI) is tracker/whatif.py; the decisions
are in docs/semantics.md, "What-if replay".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from engine.calendar import WorkCalendar
from engine.core import Engine
from engine.outcome import Outcome
from engine.step import one_line
from schemas.events import EventError, parse_event
from schemas.ledger import LoggedEvent
from schemas.points import format_points
from schemas.registry import Assessment, Registry
from schemas.rulebook import Rulebook

Totals = Mapping[tuple[str, int, str], Decimal]  # (unit, year, indicator) -> points deducted
ZERO = Decimal(0)


class WhatIfError(ValueError):
    """A what-if that cannot be run as asked; the message is one line for the user."""


def assessed_as(book: Rulebook, year: int) -> Rulebook:
    """`book` assessing `year`: itself in its own year, else a copy that says so in its id (the
    engine insists that an assessment's rulebook is of the assessment's year and tier)."""
    if year == book.year:
        return book
    return book.model_copy(update={"id": f"{book.id}-as-{year}", "year": year})


def what_if_config(
    registry: Registry,
    books: Mapping[str, Rulebook],
    chosen: Rulebook,
    *,
    unit: str | None = None,
    year: int | None = None,
) -> tuple[Registry, dict[str, Rulebook]]:
    """The registry with `chosen` assessing its tier in `year` (else in every year the registry
    assesses that tier), and the rulebooks that registry names. Rulebooks are assigned per tier
    and year, so every unit of the tier is assessed under `chosen`; `unit` only has to be one."""
    if unit is not None:
        found = registry.unit(unit)
        if found is None:
            raise WhatIfError(f"unknown unit {unit!r}: the store's registry does not have it")
        if found.tier != chosen.tier:
            raise WhatIfError(
                f"rulebook {chosen.id} assesses {chosen.tier} units; {unit} is a {found.tier} unit"
            )
    years = (
        {year}
        if year is not None
        else {a.year for a in registry.assessments if a.tier == chosen.tier}
    )
    if not years:
        raise WhatIfError(
            f"the store's registry assesses {chosen.tier} units in no year: give --year N to "
            f"assess a year under {chosen.id}"
        )
    copies = {y: assessed_as(chosen, y) for y in sorted(years)}
    kept = [a for a in registry.assessments if not (a.tier == chosen.tier and a.year in years)]
    out = dict(books)
    for a in kept:
        # a draft named like a recorded rulebook that still assesses another year would change
        # that year too
        clash = next((c for c in copies.values() if c.id == a.rulebook), None)
        if clash is not None and books.get(a.rulebook) != clash:
            raise WhatIfError(
                f"rulebook {clash.id} differs from the recorded {a.rulebook}, which still "
                f"assesses {a.tier} in {a.year}: give the draft another id"
            )
    for copy in copies.values():
        out[copy.id] = copy
    assessments = [
        Assessment(year=a.year, tier=a.tier, rulebook=copies[a.year].id)
        if a.tier == chosen.tier and a.year in years
        else a
        for a in registry.assessments
    ]
    covered = {a.year for a in assessments if a.tier == chosen.tier}
    assessments += [
        Assessment(year=y, tier=chosen.tier, rulebook=c.id)
        for y, c in copies.items()
        if y not in covered
    ]
    rewritten = Registry(assessments=tuple(assessments), units=registry.units)
    used = {a.rulebook for a in rewritten.assessments}
    return rewritten, {k: v for k, v in out.items() if k in used}


@dataclass(frozen=True, slots=True)
class Refused:
    """A logged event that the what-if rules refuse (it deducts nothing there)."""

    event_id: str
    partition: int
    seq: int
    reason: str


def replay_log(
    registry: Registry,
    books: Mapping[str, Rulebook],
    calendar: WorkCalendar,
    events: Iterable[LoggedEvent],
) -> Iterator[tuple[LoggedEvent, Outcome]]:
    """Each logged event with its outcome under `registry`, through one fresh engine per
    partition, as the worker keeps one per partition (each partition has its own event clock).
    The log's rows are input like any other: one that is not an event is an error, not a crash."""
    engines: dict[int, Engine] = {}
    for logged in events:
        engine = engines.get(logged.partition)
        if engine is None:
            engine = engines[logged.partition] = Engine(registry, books, calendar)
        try:
            event = parse_event(logged.raw)
        except EventError as exc:
            raise WhatIfError(
                f"the event log holds an invalid event at partition {logged.partition} seq "
                f"{logged.seq}: {exc.reason}"
            ) from None
        try:
            outcome = engine.apply(event)
        except Exception as exc:  # an engine defect: named, not a traceback
            raise WhatIfError(
                f"event {logged.event_id} cannot be applied under the what-if rules: "
                f"{one_line(exc)}"
            ) from exc
        yield logged, outcome


@dataclass(frozen=True, slots=True)
class Difference:
    """Points deducted from one unit in one year on one indicator: in the store (`actual`) and
    under the other rulebook (`what_if`)."""

    unit: str
    year: int
    indicator: str
    actual: Decimal
    what_if: Decimal

    @property
    def delta(self) -> Decimal:
        """Positive: the other rulebook deducts more."""
        return self.what_if - self.actual

    def as_json(self) -> dict[str, str | int]:
        return {
            "unit": self.unit,
            "year": self.year,
            "indicator": self.indicator,
            "actual": format_points(self.actual),
            "what_if": format_points(self.what_if),
            "delta": format_points(self.delta),
        }


def differences(
    actual: Totals, what_if: Totals, *, unit: str | None = None, year: int | None = None
) -> list[Difference]:
    """Every (unit, year, indicator) whose points differ, sorted; an indicator one side lacks
    counts 0 there."""
    out = []
    for key in sorted(actual.keys() | what_if.keys()):
        u, y, indicator = key
        if (unit is not None and u != unit) or (year is not None and y != year):
            continue
        a, w = actual.get(key, ZERO), what_if.get(key, ZERO)
        if a != w:
            out.append(Difference(u, y, indicator, a, w))
    return out
