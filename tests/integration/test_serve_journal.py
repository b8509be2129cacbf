"""The intake journal of `tracker serve`'s embedded backend, on a real chDB store (issue 10,
speed): a request is answered once its lines are journaled and durable, before the store is
written; reads wait until what was answered before them is applied (read-your-writes); what was
journaled and not applied when the process died is applied at the next start, exactly once; a
torn last record (a crash mid-append, never answered) is cut off; duplicates are told apart
across a restart."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sinks.clickhouse import ClickHouseStore
from tests.integration.store_dump import dump
from tests.integration.test_serve_group_commit import HeldStore, notice, other_store
from tests.serve_kit import Served, event, serve

pytestmark = pytest.mark.integration


def state(store: Any) -> dict[str, Any]:
    return dump(store)  # with the dead letters: a re-applied request must not double them


def crashed(served: Served) -> None:
    """The process "dies" with its journal as it is: the applier is stopped for good (it holds
    nothing; the service and its store object are abandoned, never closed or written again)."""
    assert served.service._lock.acquire(timeout=30)  # never released: the applier waits forever


def requests() -> list[tuple[str, list[dict[str, Any]]]]:
    return [
        ("centre", [notice(0), notice(1, "fj.xm")]),
        ("centre", [notice(2), notice(0)]),  # a duplicate of the request before
        # refused by the engine (feedback on a notice it never had): a dead letter
        ("unit_gat", [event("vuln.feedback", "fj.gat", "fb-x", notice_id="V-none")]),
        ("centre", [event("event.retracted", "fj.fz.gl", "r-1", target_event_id="n-2")]),
    ]


def test_an_answer_comes_once_journaled_and_reads_wait_for_the_store(
    chdb_dsn: str, tmp_path: Path
) -> None:
    held = HeldStore(ClickHouseStore(chdb_dsn))
    served = serve(held, tmp_path)
    answered: list[Any] = []
    first = threading.Thread(target=lambda: answered.append(served.post("centre", [notice(0)])))
    first.start()
    first.join(20)
    assert answered and answered[0].json()["accepted"] == 1, "not answered before the store"
    assert held.holding.wait(60)  # its store write is under way, and held
    # the next one too is answered while the store is held: its lines are not stored
    second = served.post("centre", [notice(1)])
    assert second.json()["accepted"] == 1 and "n-1" not in held.stored
    # a read waits until everything answered before it is applied
    read: list[Any] = []
    reader = threading.Thread(
        target=lambda: read.append(served.get("auditor", "/v1/events", partition=0))
    )
    reader.start()
    time.sleep(0.3)
    assert not read, "a read answered before what was posted before it was stored"
    held.release.set()
    reader.join(60)
    assert [e["event_id"] for e in read[0].json()["events"]] == ["n-0", "n-1"]
    assert held.stored == {"n-0", "n-1"}


def test_requests_journaled_before_a_crash_are_applied_once_at_start(
    chdb_dsn: str, chdb_path: Path, tmp_path: Path
) -> None:
    # the same requests on a server that never stops: what the restarted one must equal
    with_restart, reference = tmp_path / "crash", tmp_path / "reference"
    with other_store(chdb_path) as alone_store:
        alone = serve(alone_store, reference)
        for who, events in requests():
            assert alone.post(who, events).status_code == 200
        alone.service.settle()
        expected = state(alone_store)
    first = serve(ClickHouseStore(chdb_dsn), with_restart)
    crashed(first)
    for who, events in requests():
        assert first.post(who, events).status_code == 200  # journaled, never applied
    assert dump(first.service.store)["events"] == []
    second = serve(ClickHouseStore(chdb_dsn), with_restart)  # the next start
    try:
        second.service.settle(60)
        got = state(second.service.store)
        assert _without_times(got) == _without_times(expected)
        assert [e["event_id"] for e in got["events"]] == ["n-0", "n-1", "n-2", "r-1"]
        assert len(got["letters"]) == 1
    finally:
        second.service.close()
    # and once only: a third start finds nothing to apply
    third = serve(ClickHouseStore(chdb_dsn), with_restart)
    try:
        assert not third.service._queue
        assert state(third.service.store) == got
    finally:
        third.service.close()


def test_a_lost_applied_mark_re_applies_without_doubling(chdb_dsn: str, tmp_path: Path) -> None:
    """A crash between the store write and the applied mark: the next start applies the
    journal again; the event log tells its lines as duplicates, the dead letters are kept once."""
    first = serve(ClickHouseStore(chdb_dsn), tmp_path)
    for who, events in requests():
        assert first.post(who, events).status_code == 200
    first.service.close()
    stored = state(ClickHouseStore(chdb_dsn))
    (tmp_path / "journal" / "applied.json").unlink()
    second = serve(ClickHouseStore(chdb_dsn), tmp_path)
    try:
        assert len(second.service._queue) == 4  # every request, read back
        second.service.settle(60)
        assert state(second.service.store) == stored
    finally:
        second.service.close()


def test_a_torn_last_record_is_cut_off_and_the_rest_applied(
    chdb_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = serve(ClickHouseStore(chdb_dsn), tmp_path)
    crashed(first)
    assert first.post("centre", [notice(0)]).status_code == 200
    segment = max((tmp_path / "journal").glob("*.jsonl"))
    whole = segment.read_bytes()
    with segment.open("ab") as torn:  # the next append, cut short by the crash
        torn.write(b'{"v":1,"by":"centre:*","at":"2018-04-01T02:00:00+00:00","lines":[[1,"{\\"ev')
    with caplog.at_level(logging.WARNING, logger="tracker.serve.journal"):
        second = serve(ClickHouseStore(chdb_dsn), tmp_path)
    try:
        assert "torn last record" in caplog.text
        assert segment.read_bytes() == whole  # cut off
        second.service.settle(60)
        assert [e["event_id"] for e in state(second.service.store)["events"]] == ["n-0"]
        # the journal goes on: a new request, applied
        assert second.post("centre", [notice(1)]).json()["accepted"] == 1
        second.service.settle(60)
        assert len(state(second.service.store)["events"]) == 2
    finally:
        second.service.close()


def test_duplicates_are_told_apart_across_a_restart(chdb_dsn: str, tmp_path: Path) -> None:
    first = serve(ClickHouseStore(chdb_dsn), tmp_path)
    assert first.post("centre", [notice(0)]).json()["accepted"] == 1
    first.service.settle()
    crashed(first)
    assert first.post("centre", [notice(1)]).json()["accepted"] == 1  # journaled only
    second = serve(ClickHouseStore(chdb_dsn), tmp_path)
    try:
        # n-0 is logged, n-1 journaled before the restart (applied or not yet): duplicates
        again = second.post("centre", [notice(0), notice(1), notice(2)]).json()
        assert (again["accepted"], again["duplicates"]) == (1, 2)
        second.service.settle(60)
        logged = [e["event_id"] for e in state(second.service.store)["events"]]
        assert logged == ["n-0", "n-1", "n-2"]
    finally:
        second.service.close()


def _without_times(tables: dict[str, Any]) -> dict[str, Any]:
    """The tables without the receive times and what is made from them (the signatures and
    chains): the two servers received the same requests at other instants."""
    drop = {"received_at", "signature", "chain", "letter_id"}

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in drop}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(tables)
