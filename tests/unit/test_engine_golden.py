"""The engine's output, pinned: a change made for speed must not change one byte of what it emits.

Two seeded demo streams (every event type, re-posts, redeliveries, retractions, deadlines met,
late and overdue, years closing) run through the engine; everything it returns is written out
with `repr` of every field value (so a Decimal("0.50") for a Decimal("0.5"), or another tzinfo
for the same instant, counts as a change, although both serialise alike) and hashed. The
pinned figures are those of the engine before issue 12's speed work.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import BaseModel

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from engine import Engine, Outcome
from schemas.events import parse_event
from tracker import demo

# name: (seed, years, scale, events, scrambled, counts, SHA-256 of the canonical output)
# fmt: off
GOLDEN: dict[str, tuple[int, tuple[int, ...], float, int, bool, dict[str, int], str]] = {
    # all three assessed years at a sparse density: years close, 2020's due-judged notices
    # and supervision signals, deadlines met, late, overdue and withdrawn
    "years": (
        11,
        (2017, 2018, 2020),
        0.5,
        1_000_000,
        False,
        {"events": 26329, "accepted": 26223, "duplicate": 106, "entries": 10020, "capped": 8602,
         "reversals": 185, "deadline states": 6315, "seen": 705},
        "31b202d8c3d5b111fb80675c197a1ff61981e22edc149f84127988e337714bb6",
    ),
    # the benchmark's dense stream: caps fill, capped entries, headroom freed by retractions
    "dense": (
        7,
        (2017, 2018, 2020),
        20.0,
        25_000,
        False,
        {"events": 25000, "accepted": 24905, "duplicate": 95, "entries": 23609, "capped": 22807,
         "reversals": 284, "deadline states": 6158, "seen": 580, "open deadlines": 378},
        "af225196aee6c153e564341de5c5b2c4137bcdcde4c4c0962b44d9c8cd3c6ad4",
    ),
    # the sparse stream out of order, and with a processing clock: rejections of every kind
    "scrambled": (
        12,
        (2017, 2018, 2020),
        0.3,
        1_000_000,
        True,
        {"events": 16716, "accepted": 11414, "duplicate": 4076, "rejected": 1226, "entries": 6019,
         "capped": 4489, "reversals": 332, "deadline states": 3498, "seen": 748,
         "open deadlines": 16},
        "e28eb4b241ee9f90b47721898a2466ed8721b9bef2e1754371a0e3d1f9b2e0a9",
    ),
}
# fmt: on


def canonical(model: BaseModel) -> str:
    """A model as the repr of each of its fields, in field order."""
    fields = model.__dict__
    values = ", ".join(f"{name}={fields[name]!r}" for name in type(model).model_fields)
    return f"{type(model).__name__}({values})"


def lines_of(outcome: Outcome) -> Iterator[str]:
    yield f"{outcome.status} {outcome.event_id!r} {outcome.reason!r}"
    for part in (outcome.entries, outcome.deadlines, outcome.seen):
        for model in part:
            yield canonical(model)


def scramble(lines: list[str]) -> tuple[list[str], datetime]:
    """Lines shuffled within windows of 100 (feedback before its notice, a retraction before
    its event), every 300th moved to the end (its year closed by then), and a processing clock
    some events are ahead of."""
    rng = random.Random(3)
    out: list[str] = []
    late: list[str] = []
    for start in range(0, len(lines), 100):
        window = lines[start : start + 100]
        rng.shuffle(window)
        out += window[1:] if start % 300 == 0 else window
        late += window[:1] if start % 300 == 0 else []
    return out + late, datetime(2020, 11, 1, tzinfo=timezone(timedelta(hours=8)))


def run(
    seed: int, years: tuple[int, ...], scale: float, events: int, scrambled: bool
) -> tuple[dict[str, int], str]:
    registry = load_registry(DEMO_REGISTRY)
    stream = list(
        itertools.islice(
            demo.lines(demo.generate(registry, seed=seed, years=years, scale=scale)), events
        )
    )
    now = None
    if scrambled:
        stream, now = scramble(stream)
    engine = Engine(registry, load_rulebooks(), official_calendar())
    counts: Counter[str] = Counter()
    sha = hashlib.sha256()
    for line in stream:
        outcome = engine.apply(parse_event(line), now=now)
        counts["events"] += 1
        counts[outcome.status] += 1
        counts["entries"] += len(outcome.entries)
        counts["capped"] += sum(1 for e in outcome.entries if e.capped)
        counts["reversals"] += sum(1 for e in outcome.entries if e.reverses is not None)
        counts["deadline states"] += len(outcome.deadlines)
        counts["seen"] += len(outcome.seen)
        for text in lines_of(outcome):
            sha.update(text.encode("utf-8") + b"\n")
    for state in engine.open_deadlines():
        counts["open deadlines"] += 1
        sha.update(canonical(state).encode("utf-8") + b"\n")
    return dict(counts), sha.hexdigest()


@pytest.mark.parametrize("name", list(GOLDEN))
def test_the_engine_emits_exactly_what_it_emitted_before(name: str) -> None:
    seed, years, scale, events, scrambled, counts, pinned = GOLDEN[name]
    got_counts, got = run(seed, years, scale, events, scrambled)
    assert got_counts == counts
    assert got == pinned


if __name__ == "__main__":  # prints the figures to pin
    for key, (seed, years, scale, events, scrambled, _, _) in GOLDEN.items():
        print(key, *run(seed, years, scale, events, scrambled))
