"""sinks/rows.py's `Rows` for an embedded store, through chDB's own Python API: read only, and
without the driver (clickhouse-connect), whose import and connection handshake (a version
query, the server's ~1,500 settings, a protocol probe) cost more CPU than the status read of a
1M-event store does in the engine (BENCHMARKS.md, "As-of status").

The engine answers in TabSeparatedWithNamesAndTypes: its second line is each column's type, so
the caller checks the types per query as it does with the driver's, and this module turns a
value into Python only for the types it knows, as the driver gives them (str, int, Decimal at
its column's scale, None for NULL); any other type is an error, not a guess. Query parameters
are written as the driver writes them (`binding.format_bind_value`: escaped text at the top,
quoted literals inside arrays and tuples), and a text value that is not UTF-8 becomes its hex,
as the driver makes it. tests/integration/test_rows.py runs both adapters on the same queries.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from decimal import Context, Decimal, localcontext
from operator import methodcaller
from typing import Any

from sinks.dsn import chdb_location
from sinks.errors import StoreError
from sinks.rows import QueryError, Result
from sinks.store_open import engine_stderr, first_line, open_failed, split_dsn

FORMAT = "TabSeparatedWithNamesAndTypes"
_INTS = frozenset(
    {"UInt8", "UInt16", "UInt32", "UInt64", "Int8", "Int16", "Int32", "Int64", "Bool"}
)
# the escapes of ClickHouse's tab-separated text: \b \f \n \r \t \0, and a backslash before any
# other character (its own backslash, a quote) stands for that character
_ESCAPES = {"0": "\0", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_BYTE_ESCAPES = {k.encode(): v.encode() for k, v in _ESCAPES.items()}
_BYTE_ESCAPED = re.compile(rb"\\(.)", re.DOTALL)
# what the driver escapes in a parameter's text (`binding.escape_str`)
_PARAM_ESCAPES = str.maketrans({c: "\\" + c for c in ("\\", "'", "`", "\t", "\n")})
_DECIMALS = Context(prec=80)  # Decimal(76, S) at most; the default 28 digits would round


class EmbeddedRows:
    """An embedded store's directory, opened by chDB in this process (one engine per process:
    a driver's connection to the same directory in this process shares it)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        split_dsn(dsn)  # the database's name checked
        location = chdb_location(dsn)
        if location is None:
            raise StoreError("not an embedded store's directory")
        said: list[str] = []
        try:
            with engine_stderr(True) as said:
                from chdb import _chdb

                # the driver's spelling of the directory (realpath): chDB compares paths as
                # text, and a second spelling in one process is refused
                # (the extension module's stubs do not declare it)
                self._conn = _chdb.connect(os.path.realpath(location[0]))  # type: ignore[attr-defined]
        except Exception as exc:  # chDB raises several unrelated types for "cannot open"
            raise open_failed(exc, dsn, said) from None

    def query(self, sql: str, params: dict[str, Any] | None = None) -> Result:
        bound = {name: _param(value) for name, value in (params or {}).items()}
        try:
            answer = self._conn.query(sql, FORMAT, params=bound)
        except RuntimeError as exc:
            raise QueryError(first_line(exc, self.dsn)) from None
        if answer.has_error():
            raise QueryError(first_line(RuntimeError(answer.error_message()), self.dsn))
        return decode(answer.bytes())

    def close(self) -> None:
        self._conn.close()


def _param(value: Any, top: bool = True) -> str:
    if value is None:
        return "\\N" if top else "NULL"
    if isinstance(value, str):
        text = value.translate(_PARAM_ESCAPES)
        return text if top else f"'{text}'"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return f"[{', '.join(_param(x, False) for x in value)}]"
    if isinstance(value, tuple):
        return f"({', '.join(_param(x, False) for x in value)})"
    raise TypeError(f"a query parameter of type {type(value).__name__}")


def decode(data: bytes) -> Result:
    """The rows of a TabSeparatedWithNamesAndTypes answer, each value as the driver gives it."""
    if not data:
        return Result([], [])  # (chDB answers a query without rows with nothing at all)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # some value is not UTF-8: each is decoded alone, as the driver does
        return _decode(data, b"\t", b"\\N", _bytes_text)
    return _decode(text, "\t", "\\N", _unescape)


def _decode(data: Any, tab: Any, null: Any, text: Callable[[Any], str]) -> Result:
    newline = b"\n" if isinstance(tab, bytes) else "\n"
    _, _, rest = data.partition(newline)  # the names line
    kinds, complete, body = rest.partition(newline)
    if not complete or (body and not body.endswith(newline)):
        raise StoreError("the store's answer was cut short")
    types = [text(t) for t in kinds.split(tab)]
    if not body:
        return Result([], [])  # as the driver answers, which may not know the types then
    body = body[:-1]
    # every row as wide as the columns (a value holds no tab or line break: the engine escapes
    # them); then the values are cut once, column by column, not line by line
    if not all(map((len(types) - 1).__eq__, map(methodcaller("count", tab), body.split(newline)))):
        raise StoreError("the store's answer has rows of another width than its columns")
    values = body.replace(newline, tab).split(tab)
    width = len(types)
    # no escape anywhere (the common case): a text column is its values as they are
    plain = text is _unescape and "\\" not in body
    columns = [_column(kind, values[n::width], null, text, plain) for n, kind in enumerate(types)]
    return Result(types, list(zip(*columns, strict=True)))


def _column(
    kind: str, values: list[Any], null: Any, text: Callable[[Any], str], plain: bool
) -> list[Any]:
    inner = kind.removeprefix("LowCardinality(").removesuffix(")") if "Low" in kind else kind
    nullable = inner.startswith("Nullable(")
    inner = inner.removeprefix("Nullable(").removesuffix(")") if nullable else inner
    convert: Callable[[Any], Any]
    if inner == "String":
        if plain and not nullable:
            return values
        if text is _unescape:  # without a call per value that needs none
            if nullable:
                return [
                    None if v == null else (v if "\\" not in v else _unescape(v)) for v in values
                ]
            return [v if "\\" not in v else _unescape(v) for v in values]
        convert = text
    elif inner in _INTS:
        convert = int if inner != "Bool" else _bool
    elif inner.startswith("Decimal(") and inner.endswith(")"):
        convert = _decimal(int(inner[:-1].rpartition(",")[2]))
    else:
        raise StoreError(f"the store's columns have types this version cannot read: {kind}")
    if nullable:
        return [None if v == null else convert(v) for v in values]
    return [convert(v) for v in values]


def _unescape(value: str) -> str:
    return _ESCAPED.sub(lambda m: _ESCAPES.get(m[1], m[1]), value) if "\\" in value else value


def _bytes_text(value: bytes) -> str:
    if b"\\" in value:
        value = _BYTE_ESCAPED.sub(lambda m: _BYTE_ESCAPES.get(m[1], m[1]), value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex()


def _bool(value: str | bytes) -> bool:
    return value in ("true", b"true")


def _decimal(scale: int) -> Callable[[str | bytes], Decimal]:
    """A Decimal at the column's scale, as the driver makes it (the engine's text drops the
    trailing zeros: 2.5 of a Decimal(18, 2) is 2.50)."""
    step = Decimal(1).scaleb(-scale)

    def convert(value: str | bytes) -> Decimal:
        with localcontext(_DECIMALS):
            number = Decimal(value.decode("ascii") if isinstance(value, bytes) else value)
            return number.quantize(step)

    return convert
