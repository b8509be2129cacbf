"""The store's driver in a writer process of its own (sinks/writer_process.py), on real chDB:
the same bytes as the driver in the CLI's process, a failed insert said at the next call with
the same text, nothing stored after it, and either process killed leaves no process behind and
nothing lost after a re-run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.holidays import official_calendar
from config.registry import load_registry
from config.rulebooks import load_rulebooks
from engine.step import logged_event
from sinks import MemoryStore, StoreError, open_store, writer_process
from sinks.base import Batch
from sinks.clickhouse import WRITTEN, ClickHouseStore
from sinks.ddl import TABLES
from sinks.writer_process import WriterClient, column_types
from tests.builders import tick
from tests.integration.store_dump import dump
from tests.integration.test_ingest_crash import BATCH, LINES, UNITS
from tests.integration.test_sink_contract import POSTERS, _fill
from tests.integration.test_store_columns import NOT_THE_BATCHES, _batches
from tracker.ingest import ingest


def _gone(pid: int, within: float = 30.0) -> bool:
    """Whether process `pid` has ended (waiting up to `within` s for it: not a speed check)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):  # ours to reap, if this process started it
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return False


@pytest.fixture
def writer_dsn(tmp_path: Path, chdb_dsn: str) -> str:
    """A store this test process never opens itself (chDB: one directory a process), its
    database named as `chdb_dsn`'s (the store's errors name it)."""
    return f"chdb://{tmp_path / 'writer'}?database={chdb_dsn.rsplit('=', 1)[1]}"


@pytest.fixture
def process_store(writer_dsn: str) -> Iterator[ClickHouseStore]:
    store = open_store(writer_dsn, writer="process")
    assert isinstance(store, ClickHouseStore) and isinstance(store.client, WriterClient)
    yield store
    store.close()


def _dump(store: ClickHouseStore, table: str) -> bytes:
    skip = NOT_THE_BATCHES.get(table)
    columns = f"* EXCEPT ({skip})" if skip else "*"
    # Merged as a reader reads them: each store merges its parts in the background when it
    # will, so two stores of the same writes may hold a key's rows in two parts or one.
    final = " FINAL" if table in MERGING else ""
    return store.client.raw_query(
        f"SELECT {columns} FROM {store.db}.{table}{final} ORDER BY ALL",
        fmt="RowBinaryWithNamesAndTypes",
    )


MERGING = {t for t, ddl in TABLES.items() if "ReplacingMergeTree" in ddl or "Aggregating" in ddl}


def test_the_writer_process_stores_the_bytes_the_driver_in_process_stores(
    chdb_dsn: str, process_store: ClickHouseStore
) -> None:
    inline = ClickHouseStore(chdb_dsn)
    try:
        for store in (inline, process_store):
            _fill(store)  # the contract's stream: every table of a write
            for batch in _batches():  # the instants at their edges (test_store_columns.py)
                store.write(batch)
        for table in TABLES:
            assert _dump(process_store, table) == _dump(inline, table), table
        assert process_store.dead_letters() == inline.dead_letters()
        assert list(process_store.logged_events()) == list(inline.logged_events())
    finally:
        inline.close()


def test_a_failed_insert_is_said_at_the_next_call_and_nothing_after_it_is_stored(
    chdb_dsn: str, writer_dsn: str
) -> None:
    columns, types = ["key"], column_types(["String"])
    inline = ClickHouseStore(chdb_dsn)
    try:
        with pytest.raises(StoreError) as said_inline:
            inline._column_types[("nosuch", *columns)] = types
            inline._insert("nosuch", columns, [["x"]])
    finally:
        inline.close()
    store = open_store(writer_dsn, writer="process")
    assert isinstance(store, ClickHouseStore)
    client = store.client
    store._column_types[("nosuch", *columns)] = types
    store._insert("nosuch", columns, [["x"]])  # sent, not waited for
    meta = ["key", "value", "saved_at"]
    store._insert("meta", meta, [["after", "the failure", time_now()]])
    with pytest.raises(StoreError) as said:
        store.store_id()
    assert str(said.value) == str(said_inline.value)
    assert str(said.value).startswith("store insert into nosuch failed: ")
    with pytest.raises(StoreError, match="store insert into nosuch failed"):
        store.committed_seq()  # every call after it
    with pytest.raises(StoreError, match="store insert into nosuch failed"):
        store.close()  # and the close
    assert isinstance(client, WriterClient) and _gone(client._proc.pid)
    again = open_store(writer_dsn, writer="process")
    assert isinstance(again, ClickHouseStore)
    try:
        keys = again._query(f"SELECT key FROM {again.db}.meta WHERE key = 'after'")
        assert keys == []  # the insert after the failed one was not stored
    finally:
        again.close()


def test_the_column_types_asked_ahead_are_the_ones_a_first_insert_asks(
    process_store: ClickHouseStore,
) -> None:
    client = process_store.client
    assert isinstance(client, WriterClient)
    client._settle()  # the answer read (the next call would read it first)
    wanted = {(f"{process_store.db}.{table}", *columns) for table, columns in WRITTEN}
    assert set(client._contexts) == wanted
    for table, *columns in wanted:  # the types a first insert asked for before this change
        assert client._contexts[(table, *columns)] == client._call("context", table, columns)


def test_types_asked_ahead_for_a_missing_table_are_asked_again_and_said_then(
    process_store: ClickHouseStore,
) -> None:
    client = process_store.client
    assert isinstance(client, WriterClient)
    missing = (f"{process_store.db}.nosuch", ["key"])
    client.prefetch_contexts([missing, (f"{process_store.db}.meta", ["key"])])
    # the failed answer is dropped, not mistaken for the next call's
    assert process_store.store_id() is not None
    assert (f"{process_store.db}.meta", "key") not in client._contexts
    assert client.create_insert_context(f"{process_store.db}.meta", ["key"]).column_types
    with pytest.raises(Exception, match="nosuch"):  # asked again: the driver's own error
        client.create_insert_context(*missing)
    assert process_store.committed_seq() == 0  # and the calls after it are answered


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


_HOLD = """
import sys, time
from sinks.writer_process import WriterClient
client = WriterClient(sys.argv[1])
print(client._proc.pid, flush=True)
time.sleep(600)
"""


def test_the_cli_killed_the_writer_process_ends_and_the_store_opens_again(
    writer_dsn: str,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, writer_dsn], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        child = int(holder.stdout.readline())
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert _gone(child), "the writer process outlived the CLI"
    finally:
        holder.kill()
        holder.wait()
    store = open_store(writer_dsn, writer="process")  # not held by a leftover process
    store.close()


def test_a_writer_process_started_ahead_is_the_one_the_store_opens_with(writer_dsn: str) -> None:
    writer_process.prestart()
    ((ahead, _),) = writer_process._started
    store = open_store(writer_dsn, writer="process")
    try:
        assert isinstance(store, ClickHouseStore) and isinstance(store.client, WriterClient)
        assert store.client._proc is ahead and not writer_process._started  # taken once
        assert store.store_id() is not None
    finally:
        store.close()
    assert _gone(ahead.pid)


def test_a_writer_process_started_ahead_loads_the_engine_before_any_store_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading chDB's library (~0.2 s) is the child's to do beside the CLI's own start, not
    after the store is asked to open; and loading it creates nothing (no store, no directory)."""
    # the child's working directory: where a library that made a session directory would
    monkeypatch.chdir(tmp_path)
    writer_process.prestart()
    ((ahead, ours),) = writer_process._started
    try:
        end = time.monotonic() + 30.0  # waits for the child's start: not a speed check
        loaded = False
        while not loaded and time.monotonic() < end:
            loaded = "_chdb" in Path(f"/proc/{ahead.pid}/maps").read_text(encoding="utf-8")
            time.sleep(0.05)
        assert loaded, "the writer process started ahead had not loaded chDB's library"
        assert list(tmp_path.iterdir()) == []
    finally:
        writer_process._started.clear()
        ours.close()  # its end of the socket pair: the child ends
    assert _gone(ahead.pid)


_UNTAKEN = """
import sys
from sinks import writer_process
writer_process.prestart()
print(writer_process._started[0][0].pid, flush=True)
if sys.argv[1] == "kill":
    import os, signal
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("end", ["exit", "kill"])
def test_a_writer_process_started_ahead_and_never_taken_ends_with_the_cli(end: str) -> None:
    cli = subprocess.run(
        [sys.executable, "-c", _UNTAKEN, end], capture_output=True, text=True, check=False
    )
    assert _gone(int(cli.stdout)), "a writer process started ahead outlived the CLI"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    units, stream = tmp_path / "units.yaml", tmp_path / "events.jsonl"
    units.write_text(UNITS, encoding="utf-8")
    stream.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return units, stream


def _cli(units: Path, store: Path, stream: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if k not in ("TRACKER_WRITE_FAULT", "TRACKER_STORE")
    }
    argv = [sys.executable, "-m", "tracker", "ingest", "--units", str(units), "--store",
            f"chdb://{store}", "--batch-size", str(BATCH), "--json", str(stream)]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, env={**base, **env}, timeout=600)


_DUMP = """
import json, sys
from sinks import open_store
from tests.integration.store_dump import dump
store = open_store(sys.argv[1], create=False)
print(json.dumps(dump(store)))
store.close()
"""


def _dumped(store: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _DUMP, f"chdb://{store}"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize("at", [5, 12, 25])  # in the open, in the first batch, in the second
def test_the_writer_process_killed_the_cli_fails_and_a_rerun_loses_nothing(
    tmp_path: Path, files: tuple[Path, Path], at: int
) -> None:
    units, stream = files
    store = tmp_path / "store"
    killed = _cli(units, store, stream, TRACKER_WRITE_FAULT=f"kill-writer:{at}")
    assert killed.returncode == 2, killed.stderr  # the CLI's store error
    said = killed.stderr.strip().splitlines()[-1]
    assert "the store's writer process" in said and "ended (signal 9)" in said, said
    assert "Traceback" not in killed.stderr
    again = _cli(units, store, stream)
    assert again.returncode == 0, again.stderr
    sink = MemoryStore()
    data = [line.encode() for line in LINES]
    registry = load_registry(units)
    ingest(sink, registry, dict(load_rulebooks()), official_calendar(), data, stream.name,
           batch_size=BATCH)  # fmt: skip
    got, want = _dumped(store), dump(sink)
    assert {k: got[k] for k in ("events", "ledger", "deadlines", "status")} == {
        k: want[k] for k in ("events", "ledger", "deadlines", "status")
    }
    assert got["letters"] == want["letters"]


def test_a_query_asked_ahead_is_answered_as_the_store_was_then(
    process_store: ClickHouseStore,
) -> None:
    """`query_later`: sent now, answered after the inserts sent before it and before the ones
    after it; the calls made meanwhile are answered too, and an error is raised by its answer."""
    client = process_store.client
    assert isinstance(client, WriterClient)
    _fill(process_store)
    before = process_store.committed_seq()
    asked = client.query_later(f"SELECT max(through_seq) FROM {process_store.db}.batches")
    bad = client.query_later(f"SELECT * FROM {process_store.db}.nosuch")
    event = tick("2018-12-01T00:00").model_copy(update={"event_id": "after-the-ask"})
    batch = Batch()  # another write, sent after the asks
    batch.events.append(logged_event(event, event.model_dump_json(), 0, before + 1, POSTERS[0], ""))
    process_store.write(batch)
    assert process_store.committed_seq() == before + 1  # a call between: its own answer
    assert asked().result_rows == [(before,)]  # the store as it was at the ask
    with pytest.raises(Exception, match="nosuch"):
        bad()
    with pytest.raises(Exception, match="nosuch"):  # read once, raised each time it is asked
        bad()
    assert process_store.known_events(["nope"]) == set()  # and the calls after it are answered


def test_the_callers_work_is_done_in_the_waits_and_changes_no_reply(writer_dsn: str) -> None:
    """`idle` (tracker/lines.py `LinesRead.read_some`): called while a reply is awaited, from
    the open on, until it has nothing to do; the replies are the calls' own, in order."""
    done: list[int] = []  # the pieces of work done

    def idle() -> bool:
        if len(done) >= 50:
            return False  # nothing to do now
        time.sleep(0.001)  # a piece of the caller's work
        done.append(len(done))
        return True

    store = open_store(writer_dsn, writer="process", idle=idle)
    try:
        assert done, "the open's waits did none of the caller's work"
        _fill(store)
        committed = store.committed_seq()
        assert committed == store.next_seq() - 1
        assert store.known_events(["nope"]) == set()
    finally:
        store.close()
    plain = open_store(writer_dsn, writer="process")
    try:
        assert plain.committed_seq() == committed
    finally:
        plain.close()
