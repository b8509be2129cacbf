"""The light reading of a store's recorded registry and rulebooks (sinks/status_config.py), which
`tracker status` uses instead of the contract models: the same refusals, the fields it needs."""

from __future__ import annotations

import json
import typing
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.errors import StoreError
from sinks.status_config import SHAPE, read_config
from tests.builders import BOOKS, REGISTRY


def _shape(model: type[BaseModel], path: str, out: dict[str, frozenset[str]]) -> None:
    out[path] = frozenset(model.model_fields)
    for name, field in model.model_fields.items():
        for inner in _models(field.annotation):
            _shape(inner, f"{path}.{name}", out)


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def test_the_shape_is_the_models() -> None:
    models: dict[str, frozenset[str]] = {}
    _shape(Registry, "registry", models)
    _shape(Rulebook, "rulebook", models)
    assert models == SHAPE


def _meta() -> dict[str, str]:
    meta = {"registry": REGISTRY.model_dump_json()}
    meta.update({f"rulebook:{b.id}": b.model_dump_json() for b in BOOKS.values()})
    return meta


def test_what_status_reads_of_the_recorded_config() -> None:
    config = read_config(_meta())
    assert config.names == {u.id: u.name for u in REGISTRY.units}
    assert config.rulebook_for("city-gov", 2018) == REGISTRY.rulebook_for("city-gov", 2018)
    assert config.rulebook_for("city-gov", 2019) is None
    assert config.books["t-city"] == (
        ("sys", "政务信息系统安全", Decimal(6)),
        ("mlps", "等级保护", Decimal(5)),
    )


def _edit(key: str, path: list[Any], value: Any) -> dict[str, str]:
    meta = _meta()
    doc = json.loads(meta[key])
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    meta[key] = json.dumps(doc)
    return meta


BAD = [
    # (what, meta, the error names)
    ("v1 deadline", _edit("rulebook:t-city", ["indicators", 0, "items", 0, "rules", 1, "deadline"],
                          {"period_days": 14}), "items.0.rules.1.deadline.period_days"),
    ("unknown unit field", _edit("registry", ["units", 0, "colour"], "red"), "units.0.colour"),
    ("units not a list", _edit("registry", ["units"], 3), "a list was expected"),
    ("unit id a number", _edit("registry", ["units", 0, "id"], 7), "a text was expected"),
    ("empty unit name", _edit("registry", ["units", 0, "name"], ""), "a text was expected"),
    ("year a text", _edit("registry", ["assessments", 0, "year"], "2018"), "a whole number"),
    ("year a bool", _edit("registry", ["assessments", 0, "year"], True), "a whole number"),
    ("max a float", _edit("rulebook:t-city", ["indicators", 0, "max_points"], 6.5), "points"),
    ("max not a number", _edit("rulebook:t-city", ["indicators", 0, "max_points"], "six"),
     "points"),
    ("max zero", _edit("rulebook:t-city", ["indicators", 0, "max_points"], "0"), "points"),
    ("max infinite", _edit("rulebook:t-city", ["indicators", 0, "max_points"], "Infinity"),
     "points"),
    ("no indicators", _edit("rulebook:t-city", ["indicators"], None), "a list was expected"),
    ("duplicate unit", _edit("registry", ["units", 1, "id"], "gat"), "duplicate unit id"),
    ("not JSON", {**_meta(), "registry": "{"}, "registry cannot be read"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "meta", "named"), BAD, ids=[b[0] for b in BAD])
def test_a_recorded_value_this_version_cannot_read_is_refused(
    what: str, meta: dict[str, str], named: str
) -> None:
    with pytest.raises(StoreError, match="cannot be read by this version") as caught:
        read_config(meta)
    assert named in str(caught.value)
    assert "contract v1 must be rebuilt" in str(caught.value)
