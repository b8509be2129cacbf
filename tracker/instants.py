"""An `--as-of` value as an instant (issue 11), checked the one way for Typer's option callback
(tracker/options.py) and for the plain reading of `tracker status` (tracker/cli.py), which runs
without Typer."""

from __future__ import annotations

from datetime import datetime


def parse_instant(text: str | None) -> datetime | None:
    """RFC 3339 with its offset (event time is never naive), to the millisecond: the store
    keeps instants so. None: now, the store's latest outputs. ValueError says what is wrong."""
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an RFC 3339 time (e.g. 2018-06-30T00:00:00+08:00)"
        ) from None
    if at.tzinfo is None:
        raise ValueError(f"{text!r} has no offset: give one, e.g. {text}+08:00")
    if at.microsecond % 1000:
        raise ValueError(
            f"{text!r} is finer than a millisecond, which is as fine as the store keeps instants"
        )
    return at
