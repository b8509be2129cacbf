"""A column of an insert as the writer process is sent it (sinks/writer_process.py
`column_piece`): every kind of column the store writes comes back equal, of the same types."""

from __future__ import annotations

import pickle
from decimal import Decimal

import pytest

from sinks.writer_process import column_from_piece, column_piece

ZERO = Decimal("0")

COLUMNS = [
    # texts, each its own object (ids, digests): pickled without the memo
    ("ids", tuple(f"e-{i}" for i in range(50))),
    # a text column with NULLs after its first value
    ("nullable text", ("a", None, "b", None)),
    # non-ASCII texts (reasons), and the empty text
    ("reasons", ("漏洞未整改", "", "终端违规外联\x00\n")),
    # tuples of texts (event ids of an entry), one of them empty
    ("event ids", (("e-1",), ("e-2", "e-3"), ())),
    # the same object repeated in a column pickled without the memo comes back equal
    ("repeated", ("unit-1",) * 5),
    # Decimals (points), one shared zero: the memo kept
    ("points", (Decimal("-0.5"), ZERO, ZERO, Decimal("1.00"))),
    # ticks and flags
    ("ticks", (1_700_000_000_000, -1, 0)),
    ("flags", (True, False)),
    # a checkpoint's parts: bytes, sent as the column itself (not pickled twice)
    ("parts", (b"{}", b"\x00\xff")),
    # a list, as a caller may pass, and an empty column
    ("list", ["x", "y"]),
    ("empty", ()),
]


@pytest.mark.parametrize(("what", "column"), COLUMNS, ids=[c[0] for c in COLUMNS])
def test_a_column_comes_back_equal_and_of_the_same_types(what: str, column: object) -> None:
    back = column_from_piece(pickle.loads(pickle.dumps(column_piece(column))))  # type: ignore[arg-type]
    assert back == column
    assert type(back) is type(column)
    assert [type(v) for v in back] == [type(v) for v in column]  # type: ignore[attr-defined]
    # Decimals keep their exponent (1.00 is not 1)
    assert [str(v) for v in back] == [str(v) for v in column]  # type: ignore[attr-defined]
