"""sinks/chdb_rows.py's pure parts: the engine's tab-separated answer read into the driver's
values, and query parameters written as the driver writes them (the adapter itself runs against
the real engine in tests/integration/test_rows.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.binding import format_bind_value

from sinks.chdb_rows import _param, decode
from sinks.errors import StoreError

HEAD = b"a\tb\nString\tNullable(String)\n"


@pytest.mark.parametrize(
    ("data", "rows"),
    [
        (b"", []),  # chDB's answer to a query without rows, at times
        (HEAD, []),  # the header alone
        (HEAD + b"x\t\\N\n", [("x", None)]),
        (HEAD + b"\\\\N\t\\\\N\n", [("\\N", "\\N")]),  # the text \N, not NULL
        (HEAD + b"a\\tb\\nc\\0\\\\\\'\tz\\\\\n", [("a\tb\nc\0\\'", "z\\")]),
        (HEAD + b"\xe7\xa6\x8f\t\xff\n", [("福", "ff")]),  # not UTF-8: its hex, as the driver
        (HEAD + b"\xff\\t\t\\N\n", [("ff09", None)]),  # unescaped first, then the hex
        (b"d\tu\nDecimal(18, 2)\tUInt64\n2.5\t18446744073709551615\n", [(Decimal("2.50"), 2**64 - 1)]),
        (b"d\nDecimal(38, 4)\n-123456789012345678901234.5\n", [(Decimal("-123456789012345678901234.5000"),)]),
        (b"l\tn\nLowCardinality(String)\tLowCardinality(Nullable(String))\nx\t\\N\n", [("x", None)]),
    ],
)  # fmt: skip
def test_answers(data: bytes, rows: list[tuple[Any, ...]]) -> None:
    got = decode(data).rows
    assert got == rows
    assert [[str(v) for v in r] for r in got] == [[str(v) for v in r] for r in rows]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (HEAD + b"x\t\\N", "cut short"),  # no final line break
        (b"a\n", "cut short"),  # no types line
        (HEAD + b"x\n", "another width"),  # a value missing
        (HEAD + b"x\ty\tz\n", "another width"),  # one too many
        (b"t\nDateTime\n2020-01-01 00:00:00\n", "cannot read: DateTime"),  # a type not known
        (b"t\nArray(String)\n[]\n", "cannot read: Array"),
    ],
)
def test_refusals(data: bytes, error: str) -> None:
    with pytest.raises(StoreError, match=error):
        decode(data)


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "q'uote `tick` back\\slash tab\t line\nbreak",
        "福建省",
        "",
        0,
        -32768,
        2**64 - 1,
        None,
        [("漏洞-甲", 4), ("q'uote", 2), ("a\\b", 0)],
        ["x", None],
    ],
)
def test_parameters_are_written_as_the_driver_writes_them(value: Any) -> None:
    assert _param(value) == format_bind_value(value)


def test_a_parameter_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError):
        _param(2.5)
