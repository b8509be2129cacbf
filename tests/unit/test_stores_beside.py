"""Which other tracker stores an embedded store's folder holds, read on disk (sinks/store_open.py
`stores_beside`): the hint given when a DSN names a database the folder does not hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.store_open import beside_hint, stores_beside


def _database(folder: Path, name: str, tables: tuple[str, ...]) -> None:
    """A database as ClickHouse lays it out: `metadata/NAME.sql` and a `.sql` per table in
    `metadata/NAME/` (the name escaped as ClickHouse escapes file names)."""
    meta = folder / "metadata"
    (meta / name).mkdir(parents=True)
    (meta / f"{name}.sql").write_text("ATTACH DATABASE _ ENGINE = Atomic")
    for table in tables:
        (meta / name / f"{table}.sql").write_text("ATTACH TABLE _")


@pytest.mark.parametrize(
    ("databases", "asked", "expected"),
    [
        # the store asked for is there: nothing to say
        ({"tracker": ("events", "meta")}, "tracker", []),
        # another database holds a store: named
        ({"bench": ("events", "meta")}, "tracker", ["bench"]),
        # two others, in name order; the one asked for is never named
        (
            {"b": ("events", "meta"), "a": ("events", "meta"), "x": ("events", "meta")},
            "x",
            ["a", "b"],
        ),
        # a database without the event log and meta tables is not a tracker store
        ({"other": ("events",), "system2": ("meta",), "misc": ()}, "tracker", []),
        # a name the tracker cannot open (`split_dsn` refuses it) is not suggested
        ({"my%2Dstore": ("events", "meta")}, "tracker", []),
    ],
)
def test_the_stores_beside_are_the_other_databases_with_a_store(
    tmp_path: Path, databases: dict[str, tuple[str, ...]], asked: str, expected: list[str]
) -> None:
    for name, tables in databases.items():
        _database(tmp_path, name, tables)
    assert stores_beside(tmp_path, asked) == expected


def test_a_folder_that_is_no_store_has_none_beside(tmp_path: Path) -> None:
    assert stores_beside(tmp_path / "missing", "tracker") == []
    assert stores_beside(tmp_path, "tracker") == []


def test_the_hint_names_the_dsn_parameter_to_add() -> None:
    assert beside_hint([]) == ""
    assert beside_hint(["bench"]) == (
        "the folder holds the tracker store of database 'bench': add ?database=bench to the DSN "
        "to open it"
    )
    assert beside_hint(["a", "b"]) == (
        "the folder holds the tracker stores of databases 'a', 'b': add ?database=NAME to the "
        "DSN to open one"
    )
