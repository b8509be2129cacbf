"""`tracker ingest` makes no cyclic garbage per line, so its process runs without the cyclic
collector (tracker/cli.py `main`): the collector's passes over a state that only grows freed
nothing and cost ~1.5-2 s of a 200k-line run's CPU (BENCHMARKS.md).

The guard: the same mixed stream (accepted events, resends, lines that are not JSON, events
that are refused) ingested at two lengths into real chDB, with the collector off, and what a
collection finds unreachable afterwards compared. A fixed amount (the store's open and close)
is allowed; an amount that grows with the lines is not: garbage per line would grow such a
process without bound.
"""

from __future__ import annotations

import gc
import itertools
import json
from pathlib import Path

import pytest

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from sinks import open_store
from tracker import demo
from tracker.ingest import ingest

REFUSED = ('{"not json', "[]", json.dumps({"type": "vuln.notice", "event_id": "no-unit"}))


def _stream(count: int) -> list[bytes]:
    """`count` demo lines, every tenth followed by a line that is refused (in turn: not JSON,
    not an object, an event without its fields) and every 25th sent twice."""
    registry = load_registry(DEMO_REGISTRY)
    gen = demo.generate(registry, seed=11, years=(2018,), scale=2.0)
    out: list[bytes] = []
    for i, line in enumerate(itertools.islice(demo.lines(gen), count)):
        out.append(line.encode())
        if i % 10 == 0:
            out.append(REFUSED[(i // 10) % 3].encode())
        if i % 25 == 0:
            out.append(line.encode())
    return out


def _unreachable_after_ingest(dsn: str, lines: list[bytes], writer: str) -> int:
    registry = load_registry(DEMO_REGISTRY)
    books, calendar = dict(load_rulebooks()), official_calendar()
    gc.collect()
    gc.disable()
    try:
        store = open_store(dsn, writer=writer)
        try:
            summary = ingest(store, registry, books, calendar, lines, "garbage.jsonl")
        finally:
            store.close()
        assert summary.accepted and summary.rejected and summary.duplicates  # every path ran
        return gc.collect()
    finally:
        gc.enable()


@pytest.mark.parametrize("writer", ["process", "inline"])
def test_ingest_makes_no_cyclic_garbage_per_line(tmp_path: Path, writer: str) -> None:
    short, long = _stream(500), _stream(2_500)
    # the first run of a process also makes what is made once (caches, the driver's first use)
    _unreachable_after_ingest(f"chdb://{tmp_path / 'warm'}?database=g", short, writer)
    found_short = _unreachable_after_ingest(f"chdb://{tmp_path / 's'}?database=g", short, writer)
    found_long = _unreachable_after_ingest(f"chdb://{tmp_path / 'l'}?database=g", long, writer)
    # 2,000 more input lines (2,340 with the refused and the resent): under one object a 100
    assert found_long - found_short < 20, (found_short, found_long)
