"""Event time: assessment years and timestamps are read in Asia/Shanghai (UTC+8, no DST since 1991).

A fixed offset is used instead of the tz database so that replay never depends on the host's tzdata.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


def assessment_year(at: datetime) -> int:
    """Calendar year of an instant in Asia/Shanghai (spec 5.6)."""
    return at.astimezone(SHANGHAI).year


def year_start(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=SHANGHAI)


def local(at: datetime) -> datetime:
    """The same instant expressed with the +08:00 offset (what every output shows)."""
    return at.astimezone(SHANGHAI)


def iso(at: datetime) -> str:
    return at.astimezone(SHANGHAI).isoformat()
