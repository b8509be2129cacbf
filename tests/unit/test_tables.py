"""Human tables: what an id or a raw line contains is shown, never interpreted by the terminal
(issue 7 item 10)."""

from __future__ import annotations

import pytest

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
