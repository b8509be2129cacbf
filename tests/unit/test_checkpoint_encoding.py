"""A checkpoint's rows are encoded by orjson (sinks/checkpoint.py `_encoded`), and the text must
be byte for byte what json made before (signatures, existing checkpoints, tests/unit/
test_checkpoint_memory.py): the same separators, the same escapes of every character, the
same spelling of every value a state holds, and json's own text for what orjson refuses."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.checkpoint import _encoded


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def test_every_character_is_spelled_as_json_spells_it() -> None:
    # every code point but the surrogates (not encodable as UTF-8 at all): controls escaped
    # (\\b \\f \\n \\r \\t, else \\u00XX in lower case), DEL, U+2028/2029 and non-ASCII as is
    chars = [chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF]
    assert _encoded(chars) == _json(chars)
    assert _encoded("".join(chars)) == _json("".join(chars))


# values of the shapes a state holds (row: why)
VALUES = [
    [],  # an empty table's slice
    {},  # an assessment's caps used, none yet
    [None, True, False, 0, -1, 2**63 - 1, 2**64 - 1],  # nulls, flags, the ints orjson takes
    ["", '"', "\\", "/", "\x00\x1f\x7f", "a\u2028b\u2029c"],  # quotes, slash, edges of escapes
    ["福建省", "fj.jtt", "tf-2017-0000877", "2017-01-01T00:04:18+08:00"],  # ids, units, instants
    [[0, 1, "k", "u", ["e1", "e2"], "2018-03-01T00:00:00+08:00", "原因", None, "2.5", None, 1]],
    {"vuln": "1.5", "漏洞": "0"},  # caps by name, non-ASCII keys
    ("a", ("b", 1)),  # tuples are lists to both
    [[[[[["deep"]]]]]],  # nesting
]


@pytest.mark.parametrize("value", VALUES)
def test_values_of_a_state_are_spelled_as_json_spells_them(value: Any) -> None:
    assert _encoded(value) == _json(value)


# what orjson refuses and json takes: json's text, never an error json would not raise (row: why)
REFUSED = [
    [2**64],  # an int beyond 64 bits
    [-(2**63) - 1],  # and below
    {1: "a"},  # a key not a str (json spells it as a string)
    [Decimal("1.50")],  # not in a state, but json refuses it too: see the next test
]


@pytest.mark.parametrize("value", REFUSED[:3])
def test_what_orjson_refuses_is_json_s_text(value: Any) -> None:
    assert _encoded(value) == _json(value)


def test_what_neither_takes_fails_as_json_fails() -> None:
    with pytest.raises(TypeError):
        _encoded(REFUSED[3])
    # a lone surrogate (a JSON line may spell one as \\ud800): json writes it, UTF-8 refuses it
    with pytest.raises(UnicodeEncodeError):
        _encoded(["\ud800"])


@dataclasses.dataclass
class _Row:
    n: int


# what json refuses and orjson would spell its own way: never written silently (row: why)
NOT_JSON = [
    [datetime(2018, 3, 1, tzinfo=UTC)],  # an instant not made ISO text by the state's rows
    [date(2018, 3, 1)],  # a date
    [time(8, 30)],  # a time of day
    [_Row(1)],  # a dataclass (a Claim, a Record) that reached the rows unmade
]
# (orjson also spells UUIDs and Enum members, and some floats otherwise than json, with no
# option to refuse them: the engine has no UUID, Enum or float, and points are decimal text)


@pytest.mark.parametrize("value", NOT_JSON)
def test_what_json_refuses_is_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        _json(value)
    with pytest.raises(TypeError):
        _encoded(value)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(), inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSONISH)
def test_any_value_of_those_kinds_is_spelled_as_json_spells_it(value: Any) -> None:
    try:
        expected = _json(value)
    except UnicodeEncodeError:  # a surrogate in the text: both refuse it
        with pytest.raises(UnicodeEncodeError):
            _encoded(value)
        return
    assert _encoded(value) == expected
