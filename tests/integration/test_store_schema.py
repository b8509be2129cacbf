"""A writer's open of a chDB store runs the schema's statements once per schema, not once per
process (sinks/clickhouse_schema.py), and still mends a store whose tables or columns are gone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from sinks.clickhouse import ClickHouseStore
from sinks.clickhouse_schema import SCHEMA_KEY


@pytest.fixture
def said(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement (not query) the stores of this test send."""
    sent: list[str] = []
    command = ClickHouseStore._command

    def counted(self: ClickHouseStore, sql: str, *args: object, **kwargs: object) -> object:
        sent.append(" ".join(sql.split()))
        return command(self, sql, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ClickHouseStore, "_command", counted)
    return iter([sent])  # type: ignore[return-value]


def _schema_statements(sent: list[str]) -> list[str]:
    return [s for s in sent if s.startswith(("CREATE", "ALTER"))]


def _opened(dsn: str) -> None:
    ClickHouseStore(dsn).close()


def test_a_writer_s_second_open_sends_no_schema_statement(
    chdb_dsn: str, said: Iterator[list[str]]
) -> None:
    sent = next(said)
    _opened(chdb_dsn)
    assert len(_schema_statements(sent)) > 20  # the first open makes everything
    sent.clear()
    _opened(chdb_dsn)
    assert _schema_statements(sent) == []


@pytest.mark.parametrize(
    ("spoils", "older_mark"),
    [
        # a table gone and a view gone, the store's mark as it was: found by name
        (("DROP TABLE {db}.ledger_seen", "DROP VIEW {db}.deadlines_v"), False),
        # a column gone, with the store's mark of its schema rewritten (an older version's
        # writer ran its own statements after this one's)
        (("ALTER TABLE {db}.events DROP COLUMN chain",), True),
    ],
)
def test_a_store_missing_part_of_its_schema_is_mended(
    chdb_dsn: str, said: Iterator[list[str]], spoils: tuple[str, ...], older_mark: bool
) -> None:
    sent = next(said)
    store = ClickHouseStore(chdb_dsn)
    for spoil in spoils:
        store.client.command(spoil.format(db=store.db))
    if older_mark:
        older = [[SCHEMA_KEY, "older", datetime.now(UTC)]]
        store._insert("meta", ["key", "value", "saved_at"], older)
    store.close()
    sent.clear()
    store = ClickHouseStore(chdb_dsn)
    try:
        assert _schema_statements(sent) != []
        names = store._table_names()
        assert {"ledger_seen", "deadlines_v"} <= names
        columns = store._query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'events'",
            {"db": store.db},
        )
        assert ("chain",) in [tuple(r) for r in columns]
    finally:
        store.close()
    sent.clear()
    _opened(chdb_dsn)  # mended and marked: the next open sends nothing again
    assert _schema_statements(sent) == []
