"""Bounded state: closing assessment years without forgetting anything still open (spec 5.14).

When the clock reaches 1 January of year Y+1+retain_years, events dated up to year Y are rejected
and their ids, counting keys and caps are dropped. A notice of a closed year is kept, with every
assessment it may still change, while anything can still change it (`Notice.survives`): an open
deadline, an overdue one that feedback dated up to its due can still reverse, or one that an
accepted event of an open year refers to. The decision depends only on event time and on what the
notices are, never on their status at the moment of closing, so the result does not depend on how
often the clock ticks.
"""

from __future__ import annotations

from engine.caps import Assessment, Routes
from engine.deadlines import DueQueue
from engine.notices import Notice, NoticeKey
from engine.outcome import Record


def close_through(
    closed: int,
    *,
    records: dict[int, dict[str, Record]],
    notices: dict[int, dict[NoticeKey, Notice]],
    assessments: dict[tuple[str, int], Assessment | None],
    routes: dict[tuple[str, int, str], Routes],
    queue: DueQueue,
) -> None:
    """Forget every year up to `closed` except what a surviving notice needs."""
    for year in [y for y in records if y <= closed]:
        del records[year]
    pinned: set[int] = set()
    for year in [y for y in notices if y <= closed]:
        kept = {k: n for k, n in notices[year].items() if n.survives(closed)}
        for notice in kept.values():
            pinned.update(id(a) for a in notice.pinned())
        if kept:
            notices[year] = kept
        else:
            del notices[year]
    for key in [k for k, a in assessments.items() if k[1] <= closed and id(a) not in pinned]:
        del assessments[key]
    # A kept notice reaches its assessments through its own routes, never through this cache.
    for route in [k for k in routes if k[1] <= closed]:
        del routes[route]
    queue.compact()
