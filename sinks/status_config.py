"""What `tracker status` needs of a store's recorded registry and rulebooks, read with `json`
and checked field by field (the store's rows are input), without the contract models: the
light status read (sinks/clickhouse_status.py) imports neither pydantic nor the engine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sinks.errors import StoreError


@dataclass(frozen=True)
class StatusConfig:
    """What status needs of the recorded registry and rulebooks."""

    names: dict[str, str]  # unit id -> name
    tiers: dict[str, str]  # unit id -> tier
    assessments: tuple[tuple[int, str, str], ...]  # (year, tier, rulebook), in the registry's order
    # rulebook id -> its indicators (id, name, max points), in order
    books: dict[str, tuple[tuple[str, str, Decimal], ...]]

    def rulebook_for(self, tier: str, year: int) -> str | None:
        for y, t, book in self.assessments:
            if y == year and t == tier:
                return book
        return None


def format_points(value: Decimal) -> str:
    """schemas.points.format_points, which imports pydantic: '2.5', '0', '-1'."""
    return "0" if value == 0 else f"{value.normalize():f}"


# Every field each recorded object may have, as the contract models define them (extra fields
# are refused there): a recorded registry or rulebook with a field this version does not know,
# such as contract v1's `period_days`, is refused here too, as `load_config` refuses it.
# tests/unit/test_status_config.py keeps this in step with schemas/registry.py and rulebook.py.
SHAPE: dict[str, frozenset[str]] = {
    "registry": frozenset({"assessments", "units"}),
    "registry.assessments": frozenset({"rulebook", "tier", "year"}),
    "registry.units": frozenset({"id", "name", "parent", "tier"}),
    "rulebook": frozenset({"id", "indicators", "scope_note", "source", "tier", "title", "year"}),
    "rulebook.source": frozenset({"seed", "where"}),
    "rulebook.indicators": frozenset(
        {"id", "items", "max_points", "name", "shared_caps", "unruled"}
    ),
    "rulebook.indicators.items": frozenset({"cap_points", "clause", "number", "rules"}),
    "rulebook.indicators.items.rules": frozenset(
        {"counting", "deadline", "match", "on", "points", "scope"}
    ),
    "rulebook.indicators.items.rules.deadline": frozenset(
        {"by_notice_due", "calendar_days", "working_days"}
    ),
    "rulebook.indicators.shared_caps": frozenset({"cap_points", "id", "items"}),
    "rulebook.indicators.unruled": frozenset({"clause", "number", "why"}),
}


def _known(value: Any, shape: str, where: str = "") -> None:
    """Every object of `value` (at SHAPE's `shape`) has known fields only."""
    if isinstance(value, list):
        for n, item in enumerate(value):
            _known(item, shape, f"{where}{n}.")
        return
    if not isinstance(value, dict):
        return  # a wrong type is said where the value is read
    for name, inner in value.items():
        if name not in SHAPE[shape]:
            raise ValueError(f"{where}{name}: Extra inputs are not permitted")
        if f"{shape}.{name}" in SHAPE and inner is not None:
            _known(inner, f"{shape}.{name}", f"{where}{name}.")


def read_config(meta: dict[str, str]) -> StatusConfig:
    """The fields status needs of the recorded registry and rulebooks, each checked; a value
    this version cannot read is the error `load_config` gives (sinks/clickhouse_config.py)."""
    key = "registry"
    try:
        registry = _object(json.loads(meta["registry"]))
        _known(registry, "registry")
        names, tiers = {}, {}
        for raw in _list(registry.get("units")):
            u = _object(raw)
            unit_id, name, tier = _text(u.get("id")), _text(u.get("name")), _text(u.get("tier"))
            if unit_id in names:
                raise ValueError(f"duplicate unit id {unit_id!r}")
            names[unit_id], tiers[unit_id] = name, tier
        assessments = []
        for raw in _list(registry.get("assessments", [])):
            a = _object(raw)
            assessments.append(
                (_int(a.get("year")), _text(a.get("tier")), _text(a.get("rulebook")))
            )
        books = {}
        for key, value in meta.items():
            if key.startswith("rulebook:"):
                book = _object(json.loads(value))
                _known(book, "rulebook")
                books[key.split(":", 1)[1]] = tuple(
                    (
                        _text(i.get("id")),
                        _text(i.get("name"), empty=True),
                        _points(i.get("max_points")),
                    )
                    for i in map(_object, _list(book.get("indicators")))
                )
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise StoreError(
            f"the store's recorded {key} cannot be read by this version ({exc}); a store "
            "written under contract v1 must be rebuilt: ingest its events into a new store"
        ) from None
    return StatusConfig(names, tiers, tuple(assessments), books)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"an object was expected, not {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"a list was expected, not {type(value).__name__}")
    return value


def _text(value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str) or not (value or empty):
        raise ValueError(f"a text was expected, not {value!r:.40}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"a whole number was expected, not {value!r:.40}")
    return value


def _points(value: Any) -> Decimal:
    """A rulebook's maximum as schemas.points reads it: a decimal text, exact, positive."""
    try:
        number = (
            Decimal(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
        )
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or not number > 0:
        raise ValueError(f"points were expected, not {value!r:.40}")
    return number
