"""A list of strings bound as a server-side query parameter (`{ids:Array(String)}`), its text
made in C rather than by the driver's character-by-character escape.

The duplicate look-up of `tracker ingest` binds 20,000 event ids a chunk, and clickhouse-connect
formats each one with a Python generator over its characters (`binding.escape_str`): ~2% of the
CLI's time. Ids are untrusted text (any characters, up to 128), so the value must stay exactly
the driver's: the same text reaches the server and is parsed there as before, by the server's
own parser of the parameter's type (never spliced into the query). Here the text is made the
same way from the driver's own list of the characters it escapes, with `str.translate`, and only
for the ids that hold one of them (few do). tests/unit/test_clickhouse_bind.py compares the text
with the driver's for hostile ids, tests/integration/test_sink_contract.py looks them up in chDB.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from clickhouse_connect.driver.binding import must_escape

_ESCAPED = str.maketrans({c: f"\\{c}" for c in must_escape})
_NEEDS_ESCAPE = re.compile("|".join(map(re.escape, must_escape)))


class BoundText:
    """A parameter's value as the text the driver would have bound: the driver binds a value of a
    type it does not format itself as `str(value)`, unchanged."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"BoundText({self.text[:60]!r}...)"


def string_array(values: Sequence[str]) -> BoundText:
    """`values` bound as an Array(String) parameter: what the driver's `format_bind_value` makes
    of `list(values)`, `['a', 'b\\'c']`."""
    if not values:
        return BoundText("[]")
    if _NEEDS_ESCAPE.search("".join(values)) is None:  # the common case: nothing to escape
        return BoundText("['" + "', '".join(values) + "']")
    return BoundText("['" + "', '".join(v.translate(_ESCAPED) for v in values) + "']")
