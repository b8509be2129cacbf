"""The duplicate look-up's ids bound as the driver binds them (sinks/clickhouse_bind.py): the
same parameter text, character for character, for ids of any characters."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.binding import bind_query, format_bind_value
from hypothesis import given
from hypothesis import strategies as st

from sinks.clickhouse_bind import string_array

SQL = "SELECT event_id FROM db.events WHERE event_id IN {ids:Array(String)}"

HOSTILE = [
    "plain-1",
    "it's",
    "'",
    "''",
    "\\",
    "\\'",
    "a\\",
    "x') OR 1=1 --",
    "', '",
    "']",
    "`tick`",
    'dq"uote',
    "tab\there",
    "new\nline",
    "cr\rlf\n",
    "nul\x00byte",
    "\x00",
    "bell\x07\x1b[0m",
    "事件-门户网站",
    "emoji-\U0001f600",
    "\u202eright-to-left",
    "\\N",
    "[1, 2]",
    "{ids:String}",
    " spaced ",
]


@pytest.mark.parametrize(
    "ids",
    [[], ["only"], HOSTILE, [h for h in HOSTILE if "'" not in h and "\\" not in h], ["a", "", "b"]],
)
def test_the_text_is_the_drivers(ids: list[str]) -> None:
    assert str(string_array(ids)) == format_bind_value(list(ids))


@pytest.mark.parametrize("one", HOSTILE)
def test_each_hostile_id_alone(one: str) -> None:
    assert str(string_array([one])) == format_bind_value([one])


def test_the_driver_binds_the_text_unchanged() -> None:
    """The driver binds it as the same parameter it made of the list itself."""
    assert bind_query(SQL, {"ids": string_array(HOSTILE)}) == bind_query(SQL, {"ids": HOSTILE})


@given(st.lists(st.text(min_size=1, max_size=128), max_size=20))
def test_any_ids(ids: list[str]) -> None:
    assert str(string_array(ids)) == format_bind_value(list(ids))
