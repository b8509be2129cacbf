"""Human tables: what an id or a raw line contains is shown, never interpreted by the terminal
(issue 7 item 10)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker import tables


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("fj.gat", "fj.gat"),  # plain ids pass unchanged
        ("福建省公安厅", "福建省公安厅"),  # CJK is text, not control
        ("V-\x1b[31mred", "V-\\x1b[31mred"),  # ANSI colour (CSI)
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # OSC: would retitle the terminal window
        ("a\rb", "a\\rb"),  # carriage return: would overwrite the start of the row
        ("a\nb\tc", "a\\nb\\tc"),  # a newline would fake a table row
        ("x\x00y\x7f", "x\\x00y\\x7f"),  # NUL and DEL
        ("\x9b31m", "\\x9b31m"),  # C1 CSI, understood by some terminals
        ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override hides what follows
        ("\u2066x\u2069", "\\u2066x\\u2069"),  # bidi isolates
        ("a\u2028b", "a\\u2028b"),  # line separator
        ("e\u0301", "e\u0301"),  # a combining accent is text
    ],
)
def test_printable(text: str, shown: str) -> None:
    assert tables.printable(text) == shown


def test_render_escapes_every_cell_and_keeps_columns_aligned() -> None:
    out = tables.render(["id", "n"], [["\x1b[2J", 1], ["ok", 22]])
    assert "\x1b" not in out
    rows = out.splitlines()
    assert rows[2] == "\\x1b[2J  1" and rows[3] == "ok       22"


# A realistic `tracker ledger` page (tracker/commands.py cmd_ledger): long event ids, reasons and
# Chinese clause texts (two columns per character) made it ~250 columns wide.
LEDGER_HEADERS = ["unit", "year", "seq", "effective", "item", "requested", "applied", "state",
                  "events", "reason", "clause"]  # fmt: skip
CLAUSE = "1.实时对本单位连接互联网终端进行实名认证、安全状态检测和修复的，未落实的，扣2分。"
LEDGER_ROWS = [
    ["fj.gat", 2018, 1, "2018-03-01T10:00:00+08:00", "T1#1", "2", "2", "",
     "2018-0000001", "terminal finding tf-1 not rectified within 5 workdays", CLAUSE],
    ["fj.gat.xm.siming", 2018, 2, "2018-03-09T17:30:00+08:00", "T2#3", "0.5", "0", "capped",
     "2018-0000002,2018-0000003,2018-0000004", "incident I-9 (福建省公安厅 网站被篡改) reported late",
     CLAUSE * 2],
    ["fj.gat", 2018, 3, "2018-04-01T00:00:00+08:00", "T1#1", "-2", "-2", "reversal",
     "post-9d58018b2b7043ca", "[bold]x[/bold] \x1b[31mrectified\x1b[0m", ""],
]  # fmt: skip


def test_a_ledger_page_fits_the_terminal_width() -> None:
    out = tables.render(LEDGER_HEADERS, LEDGER_ROWS, max_col=48, width=100)
    lines = out.splitlines()
    assert max(tables.width(line) for line in lines) <= 100, out
    # nothing the terminal would act on, and nothing read as rich markup
    assert "\x1b" not in out
    assert "[bold]x[/bold]" in tables.render(LEDGER_HEADERS, LEDGER_ROWS, max_col=48, width=160)
    # every header is still there, folded or not
    joined = "".join(lines)
    for header in ("unit", "year", "seq", "item", "applied", "state", "reason", "clause"):
        assert header in joined


@pytest.mark.parametrize("columns", [60, 80, 100, 120, 200])  # narrow to wide terminals
def test_tables_fit_any_reasonable_terminal(columns: int) -> None:
    out = tables.render(LEDGER_HEADERS, LEDGER_ROWS, max_col=48, width=columns)
    assert max(tables.width(line) for line in out.splitlines()) <= columns, out


def test_in_a_pipe_every_row_is_one_line() -> None:
    # grep and head see one row per line: no terminal, no width limit, no wrapping
    out = tables.render(LEDGER_HEADERS, LEDGER_ROWS, max_col=48, width=None)
    lines = out.splitlines()
    assert len(lines) == 2 + len(LEDGER_ROWS)
    assert lines[2].startswith("fj.gat ") and "2018-0000001" in lines[2]
    assert "\x1b" not in out


def test_stdout_decides_the_default_width(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # under pytest stdout is not a terminal: the pipe layout
    assert tables.render(LEDGER_HEADERS, LEDGER_ROWS) == tables.render(
        LEDGER_HEADERS, LEDGER_ROWS, width=None
    )
    monkeypatch.setattr(tables, "terminal_width", lambda: 90)
    out = tables.render(LEDGER_HEADERS, LEDGER_ROWS)
    assert max(tables.width(line) for line in out.splitlines()) <= 90


@settings(max_examples=200, deadline=None)
@given(
    cells=st.lists(st.lists(st.text(max_size=40), min_size=3, max_size=3), max_size=5),
    columns=st.integers(min_value=12, max_value=160),
)
def test_no_line_is_wider_than_the_terminal(cells: list[list[str]], columns: int) -> None:
    # any text (CJK, controls, spaces) in three columns, on any terminal of 12 columns or more
    out = tables.render(["a", "b", "c"], cells, width=columns)
    assert max(tables.width(line) for line in out.splitlines()) <= columns, out
