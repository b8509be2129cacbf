"""Group commit in `tracker serve`'s embedded backend, on a real chDB store (issue 10, speed):
requests that arrive while the store is being written wait, and the next write applies all of
them in arrival order as ONE store write; each is answered only after its own lines are stored,
with exactly the answer it gets when the requests come one at a time, and the store equals
`tracker ingest` of the union. A group whose write fails answers every request with the error
and nothing `accepted`; the requests after it find a consistent tracker."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.holidays import official_calendar
from sinks.base import Batch
from sinks.clickhouse import ClickHouseStore
from sinks.faulty import FaultyStore, write_drill
from tests.integration.store_dump import dump
from tests.serve_kit import BOOKS, REGISTRY, event, serve
from tracker.ingest import ingest

pytestmark = pytest.mark.integration


class HeldStore:
    """The real store, counting its writes and what they stored; the first write, once stored,
    is held until the test lets it go, so that the requests sent meanwhile queue behind it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes: list[int] = []  # events per write
        self.stored: set[str] = set()
        self.release = threading.Event()
        self.holding = threading.Event()

    def write(self, batch: Batch) -> None:
        self.inner.write(batch)
        self.writes.append(len(batch.events))
        self.stored.update(e.event_id for e in batch.events)
        if len(self.writes) == 1:
            self.holding.set()
            assert self.release.wait(60)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def notice(i: int, unit: str = "fj.fz.gl") -> dict[str, Any]:
    at = f"2018-04-{1 + i % 27:02d}T10:00:00+08:00"
    return event("vuln.notice", unit, f"n-{i}", notice_id=f"V-{i}", at=at)


def requests() -> list[tuple[str, list[dict[str, Any]]]]:
    """(principal, events) in the order they are sent; the first is written alone and held."""
    retract = "event.retracted"
    return [
        ("centre", [notice(0)]),
        ("centre", [notice(1)]),
        ("centre", [notice(2), notice(2)]),  # a duplicate within one request
        ("centre", [notice(1), notice(3, "fj.xm")]),  # a duplicate of a request of the group
        # refused by the engine (feedback on a notice it never had): a dead letter
        ("unit_gat", [event("vuln.feedback", "fj.gat", "fb-x", notice_id="V-none")]),
        # a retraction of what an earlier request of the group posted, by its poster: applied
        ("centre", [event(retract, "fj.fz.gl", "r-1", target_event_id="n-1")]),
        # by another centre: refused at the door (403), nothing of it applied
        ("centre_fz", [event(retract, "fj.fz.gl", "r-2", target_event_id="n-2")]),
        ("centre", [notice(4), notice(5, "fj.xm")]),
        ("centre", [notice(0)]),  # a duplicate of the first, stored request
        *(("centre", [notice(i)]) for i in range(6, 10)),
    ]


def answers(served: Any, sent: list[tuple[str, list[dict[str, Any]]]]) -> list[Any]:
    return [(r.status_code, r.json()) for r in (served.post(who, evs) for who, evs in sent)]


def wait_queued(service: Any, count: int) -> None:
    """Until `count` requests wait behind the held write (without a queue to ask, a pause)."""
    queued = getattr(getattr(service, "groups", None), "queued", None)
    deadline = time.monotonic() + 30
    while queued is not None and queued() < count and time.monotonic() < deadline:
        time.sleep(0.005)
    if queued is None:
        time.sleep(0.1)


def post_concurrently(
    served: Any, held: HeldStore, sent: list[tuple[str, list[dict[str, Any]]]]
) -> tuple[list[Any], list[set[str]]]:
    """The first request alone (its write held), then the others one after the other while it
    is held, each on its own thread; then the write is let go. Returns the answers and, for
    each, the event ids stored when it was answered."""
    out: list[Any] = [None] * len(sent)
    stored_when_answered: list[set[str]] = [set() for _ in sent]

    def post(i: int) -> None:
        response = served.post(*sent[i])
        stored_when_answered[i] = set(held.stored)
        out[i] = (response.status_code, response.json())

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(sent))]
    threads[0].start()
    assert held.holding.wait(60)
    for i, thread in enumerate(threads[1:], start=1):
        thread.start()
        wait_queued(served.service, i)
    held.release.set()
    for thread in threads:
        thread.join(120)
    return out, stored_when_answered


@contextlib.contextmanager
def other_store(chdb_path: Path) -> Iterator[ClickHouseStore]:
    store = ClickHouseStore(f"chdb://{chdb_path}?database=t_{uuid.uuid4().hex[:12]}")
    try:
        yield store
    finally:
        store.client.command(f"DROP DATABASE IF EXISTS {store.db}")
        store.close()


def state(store: Any) -> dict[str, Any]:
    out = dump(store)
    del out["letters"]  # their origins name the request lines
    return out


def test_requests_arriving_during_a_write_are_one_write_answered_as_if_alone(
    chdb_dsn: str, chdb_path: Path, tmp_path: Path
) -> None:
    sent = requests()
    held = HeldStore(ClickHouseStore(chdb_dsn))
    served = serve(held, tmp_path / "grouped")
    got, stored_when_answered = post_concurrently(served, held, sent)
    # the first request alone, then every other one in the next write
    assert len(held.writes) == 2, f"{len(held.writes)} store writes for {len(sent)} requests"
    logged = state(held.inner)["events"]
    for (_, events), stored in zip(sent, stored_when_answered, strict=True):
        kept = {e["event_id"] for e in events} & {e["event_id"] for e in logged}
        assert kept <= stored, "answered before its lines were stored"
    # the answers of the same requests sent one at a time, in the same order
    with other_store(chdb_path) as alone_store:
        alone = serve(alone_store, tmp_path / "alone")
        assert got == answers(alone, sent)
        assert [status for status, _ in got].count(403) == 1
        assert state(held.inner) == state(alone_store)
    # the store equals `tracker ingest` of the union, in the order the server applied it
    lines = [e["raw"] for e in logged]
    with other_store(chdb_path) as ingested:
        summary = ingest(ingested, REGISTRY, BOOKS, official_calendar(), lines, "union.jsonl")
        assert summary.as_dict() == {"accepted": len(lines), "rejected": 0, "duplicates": 0}
        mine, theirs = state(held.inner), state(ingested)
        for part in ("ledger", "deadlines", "status"):
            assert mine[part] == theirs[part], part


@pytest.mark.parametrize("failure", ["outage", "half-written"])
def test_a_failed_group_write_answers_every_request_and_accepts_nothing(
    failure: str, chdb_dsn: str, chdb_path: Path, tmp_path: Path
) -> None:
    """outage: the store refuses the whole write (FaultyStore); half-written: the events are
    logged and the deadlines insert fails (the write drill), so the restore finishes the write
    that the next request finds done."""
    sent = [("centre", [notice(i), notice(i + 20, "fj.xm")]) for i in range(6)]
    fault_file = tmp_path / "outage"
    held = HeldStore(FaultyStore(ClickHouseStore(chdb_dsn), fault_file))
    served = serve(held, tmp_path / "p")
    out: list[Any] = [None] * len(sent)

    def post(i: int) -> None:
        response = served.post(*sent[i])
        out[i] = (response.status_code, response.json())

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(sent))]
    threads[0].start()
    assert held.holding.wait(60)
    for i, thread in enumerate(threads[1:], start=1):
        thread.start()
        wait_queued(served.service, i)
    drill = write_drill("error", 1, table="deadlines")
    with drill if failure == "half-written" else contextlib.nullcontext():
        if failure == "outage":
            fault_file.write_text("down")
        held.release.set()
        for thread in threads:
            thread.join(120)
    fault_file.unlink(missing_ok=True)
    assert out[0] == (200, {"accepted": 2, "duplicates": 0, "rejected": [], "backend": "embedded"})
    for status, body in out[1:]:
        assert (status, body["accepted"]) == (503, 0), body
        assert body["error"].startswith("the store failed")
        assert body.get("not_sent") == ([1, 2] if failure == "outage" else None)
    logged = {e["event_id"] for e in state(held.inner)["events"]}
    assert len(logged) == (2 if failure == "outage" else 12)
    # sent again: what the log holds is a duplicate, the rest accepted, nothing lost or doubled
    again = answers(served, sent[1:])
    assert all(status == 200 for status, _ in again)
    assert sum(body["accepted"] for _, body in again) == 12 - len(logged)
    assert sum(body["duplicates"] for _, body in again) == len(logged) - 2
    final = state(held.inner)
    assert sorted(e["event_id"] for e in final["events"]) == sorted(
        e["event_id"] for _, evs in sent for e in evs
    )
    with other_store(chdb_path) as ingested:
        lines = [e["raw"] for e in final["events"]]
        ingest(ingested, REGISTRY, BOOKS, official_calendar(), lines, "union.jsonl")
        theirs = state(ingested)
        for part in ("ledger", "deadlines", "status"):
            assert final[part] == theirs[part], part
