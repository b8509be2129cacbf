"""`engine.chain.event_digest` spelled out (issue 12) hashes the bytes of `canonical(row,
EVENT_FIELDS)`, the event log's canonical form, for every row: rows of the schema's types take
the spelled-out form, anything else canonical's own loop, and both must agree byte for byte or
every chain already stored would stop verifying."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import TzInfo

from engine.chain import EVENT_FIELDS, canonical, event_digest
from engine.clock import SHANGHAI

PROPERTY = settings(max_examples=300, deadline=None)

# Zones an instant may come in: the engine's own, UTC, the store's pydantic `TzInfo`, odd
# offsets (negative, with minutes, with seconds) that `instant` must convert to +08:00.
ZONES = st.sampled_from(
    [
        SHANGHAI,
        UTC,
        TzInfo(8 * 3600),
        TzInfo(-3600),
        timezone(timedelta(hours=-9, minutes=-30)),
        timezone(timedelta(hours=13, minutes=45, seconds=17)),
    ]
)
# Away from datetime's ends, where converting to +08:00 overflows on both paths alike.
INSTANTS = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=ZONES
)
TEXTS = st.text()  # any code point but surrogates: non-ASCII, NUL, colons, digits
INTS = st.integers(min_value=-(2**70), max_value=2**70)


def canonical_digest(row: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(row, EVENT_FIELDS)).hexdigest()


def rows(
    text: st.SearchStrategy[Any], number: st.SearchStrategy[Any], at: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "event_id": text,
            "partition": number,
            "seq": number,
            "unit": text,
            "type": text,
            "at": at,
            "year": number,
            "raw": text,
            "posted_by": text,
            "received_at": at,
            "signature": text,
            # a row's own hashes are not part of its form
            "digest": st.text(max_size=3),
            "chain": st.text(max_size=3),
        }
    )


@PROPERTY
@given(rows(TEXTS, INTS, INSTANTS))
def test_schema_rows_hash_their_canonical_form(row: dict[str, Any]) -> None:
    assert event_digest(row) == canonical_digest(row)


# Rows the schema would refuse, as a tampered store might give back: canonical's loop
# writes None as "~", bools as 1/0, floats and Decimals as text; the digest must do the same.
ODD_TEXTS = TEXTS | st.none() | st.just("") | st.booleans() | st.integers()
ODD_NUMBERS = INTS | st.none() | st.booleans() | st.decimals(allow_nan=False) | st.text()
ODD_INSTANTS = INSTANTS | st.none() | st.text(max_size=5)


@PROPERTY
@given(rows(ODD_TEXTS, ODD_NUMBERS, ODD_INSTANTS))
def test_any_row_hashes_its_canonical_form(row: dict[str, Any]) -> None:
    assert event_digest(row) == canonical_digest(row)


ROW: dict[str, Any] = {
    "event_id": "e-1",
    "partition": 0,
    "seq": 7,
    "unit": "fj-fz-001",
    "type": "incident.reported",
    "at": datetime(2018, 6, 30, 23, 59, 59, 999999, tzinfo=SHANGHAI),
    "year": 2018,
    "raw": '{"event_id":"e-1","unit":"fj-fz-001"}',
    "posted_by": "ingest:bench",
    "received_at": datetime(2018, 7, 1, tzinfo=UTC),
    "signature": "",
}


@pytest.mark.parametrize(
    ("field", "other"),
    [
        ("event_id", "e-2"),  # another id
        ("partition", 1),  # another partition, same seq
        ("seq", 8),  # the next seq
        ("unit", ""),  # a tick's empty unit
        ("type", "incident.retracted"),
        ("at", datetime(2018, 6, 30, 23, 59, 59, 998000, tzinfo=SHANGHAI)),  # a millisecond less
        ("year", 2019),
        ("raw", '{"event_id":"e-1","unit":"fj-fz-002"}'),
        ("posted_by", "centre:fj"),
        ("received_at", datetime(2018, 7, 1, 0, 0, 1, tzinfo=UTC)),
        ("signature", "m2:AAAA"),  # signed in a batch
    ],
)
def test_every_field_is_in_the_digest(field: str, other: object) -> None:
    changed = {**ROW, field: other}
    assert event_digest(changed) != event_digest(ROW)
    assert event_digest(changed) == canonical_digest(changed)


def test_a_known_row_keeps_its_digest() -> None:
    # computed by the code before the spelled-out form: the bytes of chains already stored
    known = "ca49c9116b2a4f323c13f453575691fbe1dc156a8e0f505be6e0915276c619d3"
    assert event_digest(ROW) == canonical_digest(ROW) == known
