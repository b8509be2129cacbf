"""Plain-text output for humans: tables (CJK characters take two columns on a terminal) and
`printable`, which every human (non-JSON) view passes outside text through.

On a terminal a table fits its width: long cells (reasons, clause texts) wrap inside their column. Anywhere else (a pipe, a file) every row stays one line, however wide, so that
`grep`, `head` and `cut` see rows. See docs/ingest.md ("Tables").
"""

from __future__ import annotations

import re
import shutil
import sys
import unicodedata
from collections.abc import Sequence
from typing import Literal

# C0 and C1 controls and DEL (escape sequences, carriage returns, bells), line and paragraph
# separators, and the bidirectional controls that reorder what follows them on screen
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _SHORT.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def printable(text: str) -> str:
    """`text` safe to print on a terminal: control characters and text-direction overrides are
    shown as Python-style escapes (`\\x1b`, `\\n`, `\\u202e`), never acted on. Ids, names,
    reasons and raw lines come from outside; `--json` keeps the exact values."""
    return _UNSAFE.sub(_escape, text)


def width(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def clip(text: str, limit: int) -> str:
    if width(text) <= limit:
        return text
    out, used = [], 0
    for ch in text:
        w = width(ch)
        if used + w > limit - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def terminal_width() -> int | None:
    """Columns of the terminal stdout is, or None when stdout is not a terminal."""
    try:
        if sys.stdout is None or not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):  # replaced or closed stdout
        return None
    return shutil.get_terminal_size().columns


def render(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    max_col: int = 60,
    width: int | Literal["terminal"] | None = "terminal",
) -> str:
    """A table: cells escaped by `printable`, clipped to `max_col` columns. `width`: the columns
    to fit (long cells wrap inside their column); None for one line per row, whatever its
    width; by default the terminal's width when stdout is one, else None."""
    cells = [[clip(printable(str(c)), max_col) for c in row] for row in rows]
    headers = [printable(h) for h in headers]
    limit = terminal_width() if width == "terminal" else width
    plain = _lines(headers, cells)
    if limit is None or max(map(_columns, plain.splitlines())) <= limit:
        return plain  # a pipe, or it fits: one line per row
    if limit < 4 * len(headers):
        return plain  # not even two columns per cell: wrapping would only shred it
    return _fitted(headers, cells, limit)


def _lines(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    widths = [width(h) for h in headers]
    for row in cells:
        widths = [max(w, width(c)) for w, c in zip(widths, row, strict=True)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v + " " * (w - width(v)) for v, w in zip(values, widths, strict=True)
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def _fitted(headers: Sequence[str], cells: Sequence[Sequence[str]], limit: int) -> str:
    natural = [width(h) for h in headers]
    for row in cells:
        natural = [max(w, width(c)) for w, c in zip(natural, row, strict=True)]
    widths = _shares(natural, limit - 2 * (len(headers) - 1))  # two spaces between columns

    def lines(values: Sequence[str]) -> list[str]:
        folded = [_fold(v, w) for v, w in zip(values, widths, strict=True)]
        height = max(len(f) for f in folded)
        return [
            "  ".join(
                (f[k] if k < len(f) else "") + " " * (w - width(f[k] if k < len(f) else ""))
                for f, w in zip(folded, widths, strict=True)
            ).rstrip()
            for k in range(height)
        ]

    out = [*lines(headers), "  ".join("-" * w for w in widths)]
    for row in cells:
        out += lines(row)
    return "\n".join(out)


def _fold(text: str, room: int) -> list[str]:
    """`text` in lines of at most `room` columns, broken after a space where there is one."""
    if width(text) <= room:
        return [text]
    out: list[str] = []
    line, used = "", 0
    for ch in text:
        w = width(ch)
        while line and used + w > room:
            cut = line.rfind(" ")
            out.append(line[:cut].rstrip() if cut > 0 else line)
            line = line[cut + 1 :] if cut > 0 else ""
            used = width(line)
        if ch == " " and not line and out:
            continue  # a break at a space: the next line starts with the next word
        line += ch
        used += w
    out.append(line)
    return out


def _shares(natural: Sequence[int], room: int) -> list[int]:
    """Column widths that add up to at most `room`: a column narrower than an even share keeps
    its width; the wide ones (reasons, clauses, ids) split what is left and wrap."""
    shares = [0] * len(natural)
    left, open_columns = room, sorted(range(len(natural)), key=lambda i: natural[i])
    while open_columns:
        share = max(2, left // len(open_columns))  # 2: one CJK character
        i = open_columns[0]
        if natural[i] > share:
            extra = max(0, left - share * len(open_columns))
            for k, j in enumerate(open_columns):
                shares[j] = share + (1 if k < extra else 0)
            break
        shares[i] = natural[i]
        left -= natural[i]
        open_columns.pop(0)
    return shares


_columns = width  # `render`'s parameter named `width` hides the function there
