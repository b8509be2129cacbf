"""sinks/rows.py: the two adapters of the status read's port, the driver (clickhouse-connect)
and chDB's own API, give the same SQL the same answer against the real engine: the same column
types, the same Python values, the same parameters bound, the same refusals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from sinks.chdb_rows import EmbeddedRows
from sinks.connection import DriverRows, connect
from sinks.rows import QueryError, Rows, embedded, open_rows

# one row per edge of the text the engine writes and the values the driver makes
ROWS = [
    "(1, 'plain', NULL, 'lc', 2.5, 2.5, 18446744073709551615, -7)",  # Decimal(18,2) 2.5 -> 2.50
    "(2, 'tab\\there, line\\nbreak', 'back\\\\slash', 'q''uote', 0, -0.0001, 0, -32768)",
    "(3, '\\\\N', '\\\\N', '', -12.75, 123456789012345678901234.5, 1, 32767)",  # the text \\N
    "(4, 'nul\\0 \\b\\f\\r\\x07 end', '福建省 ✓', '漏洞-甲', 100, 1, 42, 0)",
    "(5, 'bad utf-8 \\xff\\xfe', 'ok', 'x', 1, 1, 1, 1)",  # not UTF-8: the driver gives its hex
    "(6, 'backslash at end \\\\', NULL, 'x', 0.01, 0, 7, 7)",
]
COLUMNS = (
    "n UInt16, s String, ns Nullable(String), lc LowCardinality(String), d Decimal(18, 2), "
    "big Decimal(38, 4), u UInt64, i Int16"
)
QUERIES: list[tuple[str, dict[str, Any] | None]] = [
    ("SELECT * FROM {db}.t ORDER BY n", None),
    ("SELECT n, s FROM {db}.t WHERE n != 5 ORDER BY n", None),  # every value UTF-8
    ("SELECT n, s, ns FROM {db}.t WHERE s = {s:String} OR ns = {s:String}", {"s": "back\\slash"}),
    ("SELECT n FROM {db}.t WHERE s = {s:String}", {"s": "tab\there, line\nbreak"}),
    ("SELECT n FROM {db}.t WHERE lc = {s:String}", {"s": "q'uote"}),
    ("SELECT n FROM {db}.t WHERE ns = {s:String}", {"s": "福建省 ✓"}),
    ("SELECT n, i FROM {db}.t WHERE i = {i:Int16} OR n = {n:UInt16}", {"i": -32768, "n": 6}),
    (
        "SELECT n FROM {db}.t WHERE (lc, n) IN {k:Array(Tuple(String, UInt16))} ORDER BY n",
        {"k": [("漏洞-甲", 4), ("q'uote", 2), ("x", 6), ("none", 1)]},
    ),
    ("SELECT sum(d), sum(big), count() FROM {db}.t", None),
    ("SELECT n, s FROM {db}.t WHERE n > 100", None),  # no rows
    ("SELECT 1 AS one, 'a\tb' AS t, toDecimal64(0, 3) AS z", None),
]


@pytest.fixture(scope="module")
def dsn(chdb_path: Any) -> Iterator[str]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    dsn = f"chdb://{chdb_path}?database={database}"
    client = connect(dsn)
    client.command(f"CREATE DATABASE {database}")
    client.command(f"CREATE TABLE {database}.t ({COLUMNS}) ENGINE = MergeTree ORDER BY n")
    client.command(f"INSERT INTO {database}.t VALUES {', '.join(ROWS)}")
    yield dsn
    client.command(f"DROP DATABASE {database}")
    client.close()


@pytest.fixture(scope="module")
def both(dsn: str) -> Iterator[tuple[Rows, Rows]]:
    driver, own = DriverRows(dsn), EmbeddedRows(dsn)
    yield driver, own
    own.close()
    driver.close()


@pytest.mark.parametrize(("sql", "params"), QUERIES, ids=[q for q, _ in QUERIES])
def test_both_adapters_give_the_same_answer(
    both: tuple[Rows, Rows], dsn: str, sql: str, params: dict[str, Any] | None
) -> None:
    driver, own = both
    db = dsn.rpartition("=")[2]
    want = driver.query(sql.replace("{db}", db), params)
    got = own.query(sql.replace("{db}", db), params)
    assert got == want
    # the same Python types and Decimal exponents, not only equal values
    assert [[type(v) for v in r] for r in got.rows] == [[type(v) for v in r] for r in want.rows]
    assert [[str(v) for v in r] for r in got.rows] == [[str(v) for v in r] for r in want.rows]


def test_the_answer_holds_what_was_stored(both: tuple[Rows, Rows], dsn: str) -> None:
    """Not only the same as the driver: the values themselves (an escape read wrong on both
    sides would pass the comparison)."""
    _, own = both
    db = dsn.rpartition("=")[2]
    types, rows = own.query(f"SELECT * FROM {db}.t ORDER BY n")
    assert types == [
        "UInt16", "String", "Nullable(String)", "LowCardinality(String)", "Decimal(18, 2)",
        "Decimal(38, 4)", "UInt64", "Int16",
    ]  # fmt: skip
    assert rows[0] == (1, "plain", None, "lc", Decimal("2.50"), Decimal("2.5"), 2**64 - 1, -7)
    assert rows[1][1:4] == ("tab\there, line\nbreak", "back\\slash", "q'uote")
    assert rows[2][1:3] == ("\\N", "\\N")
    assert rows[3][1] == "nul\0 \b\f\r\x07 end"
    assert rows[4][1] == b"bad utf-8 \xff\xfe".hex()
    assert rows[5][1] == "backslash at end \\"


def test_a_failed_query_is_the_same_error(both: tuple[Rows, Rows]) -> None:
    for rows in both:
        with pytest.raises(QueryError, match="UNKNOWN_DATABASE"):
            rows.query("SELECT * FROM nowhere_db.nothing")


def test_an_embedded_store_is_read_through_chdb_itself(dsn: str) -> None:
    assert embedded(dsn)
    assert not embedded("http://localhost:8123/?database=x")
    assert not embedded(dsn + "&ch_max_threads=1")  # a driver setting: the driver reads it
    rows = open_rows(dsn)
    try:
        assert isinstance(rows, EmbeddedRows)
    finally:
        rows.close()
