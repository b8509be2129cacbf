"""The tool's envelope of each line `tracker ingest` reads (`tracker.stamp.Stamp`): the
line's clock reading as the store keeps it, whatever readings came before. The stamp keeps its
last envelope for the readings of one millisecond (issue 12); a reading of another millisecond,
another zone or another instant written in the same zone must come out as its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import TzInfo

from engine.clock import SHANGHAI
from engine.step import stored_instant
from schemas.envelope import Envelope
from tracker.stamp import Stamp

ZONES = st.sampled_from(
    [
        UTC,
        SHANGHAI,
        TzInfo(8 * 3600),
        timezone(timedelta(hours=-9, minutes=-30)),
        timezone(timedelta(seconds=1, microseconds=250)),  # a zone off the millisecond grid
    ]
)
READINGS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES
)
# steps between readings: within a millisecond, across one, and back in time
STEPS = st.sampled_from([0, 1, 7, 499, 500, 998, 999, 1000, 1001, 2500, -1, -999, -1000])


def fresh(poster: str, now: datetime) -> Envelope:
    return Envelope(posted_by=poster, received_at=stored_instant(now), signature="")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(READINGS, st.lists(STEPS, max_size=6)), min_size=1, max_size=5))
def test_each_reading_is_stamped_with_its_own_stored_instant(
    runs: list[tuple[datetime, list[int]]],
) -> None:
    stamp = Stamp(None, "ingest:f")
    for start, steps in runs:
        now = start
        for step in [0, *steps]:
            now = now + timedelta(microseconds=step)
            envelope = stamp.at(now)
            expected = fresh("ingest:f", now)
            assert envelope == expected
            assert envelope.model_dump_json() == expected.model_dump_json()
            assert envelope.received_at.tzinfo is SHANGHAI
            assert envelope.received_at.utcoffset() == timedelta(hours=8)


def test_the_readings_of_one_millisecond_share_an_envelope_and_the_next_has_its_own() -> None:
    stamp = Stamp(None, "ingest:f")
    base = datetime(2026, 11, 28, 22, 0, 0, 123000, tzinfo=UTC)
    first = stamp.at(base)
    assert stamp.at(base + timedelta(microseconds=999)) is first
    following = stamp.at(base + timedelta(microseconds=1000))
    assert following.received_at - first.received_at == timedelta(milliseconds=1)
    # the same instant in another zone object is made afresh (and is the same value)
    assert stamp.at(base.astimezone(SHANGHAI)) == first


def test_a_callers_envelope_is_given_as_it_is() -> None:
    given_envelope = Envelope(posted_by="centre:fj", received_at=datetime(2020, 1, 1, tzinfo=UTC))
    stamp = Stamp(given_envelope, "ingest:f")
    assert stamp.at(datetime(2026, 1, 1, tzinfo=UTC)) is given_envelope
