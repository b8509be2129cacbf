"""The event log's rows made in `tracker ingest`'s writer process (sinks/writer_events.py), on
real chDB: the same bytes as the rows the CLI makes itself, over several writes, a checkpoint and
a second run that continues from it; and what goes wrong in the child is said at the next call."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.holidays import official_calendar
from config.registry import load_registry
from config.rulebooks import load_rulebooks
from config.signing import Signer
from sinks import StoreError, open_store
from sinks.base import UnmadeEvents
from sinks.clickhouse import ClickHouseStore
from sinks.ddl import TABLES
from tests.integration.test_ingest_crash import LINES, UNITS
from tests.integration.test_writer_process import _dump
from tracker.pipeline import Tracker

SIGNER = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
# a checkpoint's parts are named at random and stamped with the wall clock: compared by content
CHECKPOINTS = ("checkpoints", "checkpoint_parts")


@pytest.fixture
def process_dsn(tmp_path: Path, chdb_dsn: str) -> str:
    """A store this test process never opens itself (chDB: one directory a process)."""
    return f"chdb://{tmp_path / 'writer'}?database={chdb_dsn.rsplit('=', 1)[1]}"


def _run(store: ClickHouseStore, units: Path, lines: list[str], start: int) -> str:
    """One run of the pipeline on `store` (restored first, checkpointed at the end) with a
    clock that ticks a second a call from `start`; the chain value it ended at."""
    ticks = count(start)
    tracker = Tracker(
        store,
        load_registry(units),
        dict(load_rulebooks()),
        official_calendar(),
        clock=lambda: datetime(2026, 11, 29, tzinfo=UTC) + timedelta(seconds=next(ticks)),
        batch_size=4,  # several writes of a few events each
        signer=SIGNER,
    )
    tracker.restore()
    tracker.feed_lines([line.encode() for line in lines], "events.jsonl")
    assert tracker.checkpoint()
    assert tracker._head is not None
    return tracker._head


def test_the_rows_the_writer_process_makes_are_the_ones_the_cli_makes(
    tmp_path: Path, chdb_dsn: str, process_dsn: str
) -> None:
    units = tmp_path / "units.yaml"
    units.write_text(UNITS, encoding="utf-8")
    inline = ClickHouseStore(chdb_dsn)
    process = open_store(process_dsn, writer="process")
    assert isinstance(process, ClickHouseStore)
    try:
        assert process.makes_event_rows and not inline.makes_event_rows
        half = len(LINES) // 2
        heads = {}
        for name, store in (("inline", inline), ("process", process)):
            # a second run continues from the first's checkpoint, and resends a line
            first = _run(store, units, LINES[:half], 0)
            heads[name] = (first, _run(store, units, LINES[half - 1 :], 1000))
        assert heads["process"] == heads["inline"]
        assert process.committed_seq() == inline.committed_seq() > 0
        for table in TABLES:
            if table not in CHECKPOINTS:
                assert _dump(process, table) == _dump(inline, table), table
        assert _checkpoint(process) == _checkpoint(inline)
    finally:
        inline.close()
        process.close()


def _checkpoint(store: ClickHouseStore) -> tuple[int, str, bytes]:
    """The store's latest checkpoint: its position, its head and its text."""
    found = store.load_checkpoint(0)
    assert found is not None
    write = json.loads(found.state)["write"]
    text = b"".join(store.load_checkpoint_parts(0, found.through_seq, write))
    return found.through_seq, found.head, text


def test_events_with_no_chain_value_to_follow_are_said_at_the_next_call(process_dsn: str) -> None:
    store = open_store(process_dsn, writer="process")
    assert isinstance(store, ClickHouseStore)
    try:
        with pytest.raises(StoreError, match="no events of partition 3"):
            store.event_head(3)  # nothing made yet: said, and the next call is answered
        assert store.committed_seq(3) == 0
        at = datetime(2018, 3, 1, 10, tzinfo=UTC)
        fields = [("e1", "fj.gat", "vuln.notice", at, "{}", 1, "p", at, "")]
        store._make_events(UnmadeEvents(3, None, fields, None))  # sent, not waited for
        with pytest.raises(StoreError, match="holds no chain value of partition 3"):
            store.committed_seq(3)
    finally:
        with pytest.raises(StoreError, match="holds no chain value"):
            store.close()
