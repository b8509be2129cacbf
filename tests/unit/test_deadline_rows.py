"""Time left as the unit page shows it (tracker/serve/deadline_rows.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracker.serve.deadline_rows import time_left

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

CASES = [
    # days and hours; minutes dropped once there is a day
    (timedelta(days=14, hours=3, minutes=59), "剩余 14 天 3 小时"),
    # under a day: hours and minutes
    (timedelta(hours=5, minutes=7), "剩余 5 小时 7 分钟"),
    # under an hour: minutes
    (timedelta(minutes=42, seconds=30), "剩余 42 分钟"),
    # seconds before the due instant: never "0 分钟"
    (timedelta(seconds=20), "剩余 不足 1 分钟"),
    # exactly at the due instant feedback is still on time (contract 5.9: at <= due is met)
    (timedelta(0), "剩余 不足 1 分钟"),
    (-timedelta(seconds=1), "已超期 不足 1 分钟"),
    # past due
    (-timedelta(days=2, hours=1), "已超期 2 天 1 小时"),
]


@pytest.mark.parametrize(("left", "shown"), CASES)
def test_time_left(left: timedelta, shown: str) -> None:
    assert time_left(NOW + left, NOW) == shown
