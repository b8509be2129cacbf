"""Instants the contract accepts (issue 7 item 2) and a `due` that must follow `at` (issue 8)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from schemas.events import (
    END_INSTANT,
    FIRST_INSTANT,
    EventError,
    VulnNotice,
    _bounded,
    parse_event,
)
from streams.post_lines import Validator
from tests.builders import REGISTRY, engine, ev


def notice(at: str, due: str | None = None) -> str:
    body = {"event_id": "e1", "type": "vuln.notice", "unit": "gat", "at": at}
    body |= {"notice_id": "V1", "system": "OA"}
    if due is not None:
        body["due"] = due
    return json.dumps(body)


def tick(at: str) -> str:
    return json.dumps({"event_id": "t1", "type": "clock.tick", "at": at})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        # the year-1 `at` that crashed the processor with OverflowError (issue 7 item 2)
        (notice("0001-01-01T00:00:00+08:00"), "at"),
        # the last representable instant, in a negative offset: +8 h would overflow
        (notice("9999-12-31T23:59:59-12:00"), "at"),
        (tick("9999-12-31T23:59:59-12:00"), "at"),
        (notice("2018-03-01T10:00:00+08:00", due="0001-01-01T00:00:00+08:00"), "due"),
        (notice("2018-03-01T10:00:00+08:00", due="9999-12-31T23:59:59+14:00"), "due"),
        # one second before the first accepted instant (1970-01-01 00:00 in Asia/Shanghai)
        (notice("1969-12-31T23:59:59+08:00"), "at"),
        # the same instant written in UTC
        (notice("1969-12-31T15:59:59Z"), "at"),
        # the first rejected instant after the range (2200-01-01 00:00 in Asia/Shanghai)
        (notice("2200-01-01T00:00:00+08:00"), "at"),
        (notice("2199-12-31T16:00:00Z"), "at"),
        (notice("2018-03-01T10:00:00+08:00", due="2200-01-01T00:00:00+08:00"), "due"),
    ],
)
def test_instants_outside_the_contract_range_are_rejected(raw: str, field: str) -> None:
    with pytest.raises(EventError) as err:
        parse_event(raw)
    reason = err.value.reason
    assert reason.startswith(f"schema violation: {field}: ")
    assert "outside 1970-01-01T00:00:00+08:00 .. 2199-12-31T23:59:59+08:00" in reason


@pytest.mark.parametrize(
    "raw",
    [
        notice("1970-01-01T00:00:00+08:00"),  # the first accepted instant
        notice("1969-12-31T16:00:00Z"),  # the same instant in UTC
        notice("2199-12-31T23:59:59.999999+08:00"),  # the last accepted instant
        notice("2199-12-31T15:59:58Z", due="2199-12-31T23:59:59+08:00"),
        tick("2018-03-01T00:00:00-12:00"),
    ],
)
def test_instants_inside_the_range_are_accepted(raw: str) -> None:
    parse_event(raw)


@pytest.mark.parametrize(
    ("at", "due", "accepted"),
    [
        ("2018-03-01T10:00:00+08:00", "2018-03-01T09:59:59+08:00", False),  # before `at`
        ("2018-03-01T10:00:00+08:00", "2018-03-01T10:00:00+08:00", False),  # equal: no time at all
        ("2018-03-01T10:00:00+08:00", "2018-03-01T02:00:00Z", False),  # equal, written in UTC
        ("2018-03-01T10:00:00+08:00", "2018-03-01T10:00:01+08:00", True),  # one second later
        ("2018-03-01T10:00:00+08:00", "2018-03-01T02:00:01Z", True),  # the same, in UTC
    ],
)
def test_a_due_not_later_than_at_is_rejected(at: str, due: str, accepted: bool) -> None:
    if accepted:
        event = parse_event(notice(at, due))
        assert isinstance(event, VulnNotice) and event.due is not None
        return
    with pytest.raises(EventError) as err:
        parse_event(notice(at, due))
    assert err.value.reason == (
        f"schema violation: due: {datetime.fromisoformat(due).isoformat()} is not later than "
        f"the notice's at {datetime.fromisoformat(at).isoformat()}"
    )


@pytest.mark.parametrize(
    "raw",
    [
        notice("2018-03-01T10:00:00+08:00", due="2018-03-01T10:00:00+08:00"),
        notice("0001-01-01T00:00:00+08:00"),
        tick("9999-12-31T23:59:59-12:00"),
    ],
)
def test_post_rejects_the_same_inputs_with_the_same_reasons(raw: str) -> None:
    """`tracker post` validates with the same models before producing anything."""
    with pytest.raises(EventError) as err:
        parse_event(raw)
    event, reason = Validator(REGISTRY, lambda: datetime(2018, 6, 1, tzinfo=UTC)).check(raw)
    assert event is None and reason == err.value.reason


@pytest.mark.parametrize(
    "at",
    [
        "1970-01-01T00:00:00+08:00",  # the first accepted instant
        "2199-12-31T23:59:59.999999+08:00",  # the last: its default 2-week deadline lies in 2200
    ],
)
def test_the_engine_computes_deadlines_from_the_extreme_instants(at: str) -> None:
    eng = engine()
    out = [
        eng.apply(parse_event(notice(at).replace('"gat"', '"nd"'))),  # no rule: default period
        eng.apply(ev("supervision.warning", at, unit="nd", event_id="w1", signal_id="S1")),
        eng.apply(ev("clock.tick", at, unit=None)),
    ]
    assert out[0].status == "accepted" and out[0].deadlines[0].due > out[0].deadlines[0].noticed_at
    # no working-day calendar for those years: a clear rejection, not an overflow
    assert out[1].status == "rejected" and "does not know" in (out[1].reason or "")


# offsets of up to a day either way, as datetime allows
_OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m))
)


@given(
    st.datetimes(
        min_value=datetime(1965, 1, 1), max_value=datetime(2205, 12, 31), timezones=_OFFSETS
    )
)
def test_the_bound_is_the_range_whatever_the_offset(value: datetime) -> None:
    """An instant is refused exactly when it is outside the range, also near its ends and in
    the years whose every instant is inside it (accepted without a comparison)."""
    inside = FIRST_INSTANT <= value < END_INSTANT
    if inside:
        assert _bounded(value) is value
    else:
        with pytest.raises(PydanticCustomError):
            _bounded(value)


@pytest.mark.parametrize("minutes", [-(24 * 60 - 1), 0, 24 * 60 - 1])
@pytest.mark.parametrize(
    "local",
    [
        datetime(1970, 1, 1), datetime(1970, 12, 31, 23, 59, 59, 999_999), datetime(1971, 1, 1),
        datetime(2198, 12, 31, 23, 59, 59, 999_999), datetime(2199, 1, 1),
        datetime(2199, 12, 31, 23, 59, 59, 999_999), datetime(2200, 1, 1),
    ],
)  # fmt: skip
def test_the_ends_of_the_years_at_the_ends(local: datetime, minutes: int) -> None:
    value = local.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    if FIRST_INSTANT <= value < END_INSTANT:
        assert _bounded(value) is value
    else:
        with pytest.raises(PydanticCustomError):
            _bounded(value)
