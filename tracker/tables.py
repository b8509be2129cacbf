"""Plain-text output for humans: tables (CJK characters take two columns on a terminal) and
`printable`, which every human (non-JSON) view passes outside text through."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

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


def render(headers: Sequence[str], rows: Sequence[Sequence[object]], *, max_col: int = 60) -> str:
    cells = [[clip(printable(str(c)), max_col) for c in row] for row in rows]
    headers = [printable(h) for h in headers]
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
