"""Group commit in `tracker serve`'s embedded backend, on a real chDB store (issue 10, speed):
the requests journaled while the store is being written are applied by the next group, in
journal order, as ONE store write; each request that asks for the engine's verdict gets exactly
the verdict it gets when the requests come one at a time, and the store equals `tracker ingest`
of the union. A group whose write fails stays in the journal and is applied again until it is
stored: nothing answered `accepted` is lost or doubled."""

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
    """Each request in turn, each answered with the engine's verdict (`wait=applied`)."""
    applied = {"wait": "applied"}
    return [
        (r.status_code, r.json())
        for r in (served.post(who, evs, params=applied) for who, evs in sent)
    ]


def journaled_after_each(served: Any, sent: list[tuple[str, list[dict[str, Any]]]]) -> list[Any]:
    """`answers`, and how many requests the journal holds after each (a request refused at
    the door, or all duplicates, adds none)."""
    out, counts = [], []
    for request in sent:
        out.extend(answers(served, [request]))
        counts.append(served.service._journaled)
    return [out, counts]


def wait_journaled(service: Any, entries: int) -> None:
    deadline = time.monotonic() + 30
    # journaled and on disk (the applier takes only what is synced)
    while service._journaled < entries or service.journal.synced() < service.journal._written:
        assert time.monotonic() < deadline, f"{service._journaled} of {entries} journaled"
        time.sleep(0.002)


def post_concurrently(
    served: Any, held: HeldStore, sent: list[tuple[str, list[dict[str, Any]]]], counts: list[int]
) -> tuple[list[Any], list[set[str]]]:
    """The first request alone (its write held), then the others each on its own thread while
    it is held, one after the other (`counts`: the requests journaled after each, as they were
    when sent one at a time); then the write is let go. Each asks for the engine's verdict.
    Returns the answers and, for each, the event ids stored when it was answered."""
    out: list[Any] = [None] * len(sent)
    stored_when_answered: list[set[str]] = [set() for _ in sent]

    def post(i: int) -> None:
        response = served.post(*sent[i], params={"wait": "applied"})
        stored_when_answered[i] = set(held.stored)
        out[i] = (response.status_code, response.json())

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(sent))]
    threads[0].start()
    assert held.holding.wait(60)
    for i, thread in enumerate(threads[1:], start=1):
        thread.start()
        if counts[i] > counts[i - 1]:
            wait_journaled(served.service, counts[i])  # at the door before the next one
        else:
            thread.join(60)  # refused or all duplicates: answered at the door
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


def test_requests_journaled_during_a_write_are_one_write_with_the_verdicts_as_if_alone(
    chdb_dsn: str, chdb_path: Path, tmp_path: Path
) -> None:
    sent = requests()
    # the same requests one at a time first, on another store: their verdicts and journal
    with other_store(chdb_path) as alone_store:
        alone = serve(alone_store, tmp_path / "alone")
        expected, counts = journaled_after_each(alone, sent)
        alone.service.settle()
        alone_state = state(alone_store)
    assert [status for status, _ in expected].count(403) == 1
    held = HeldStore(ClickHouseStore(chdb_dsn))
    served = serve(held, tmp_path / "grouped")
    got, stored_when_answered = post_concurrently(served, held, sent, counts)
    # the first request alone, then every other one in the next write
    assert len(held.writes) == 2, f"{len(held.writes)} store writes for {len(sent)} requests"
    logged = state(held.inner)["events"]
    for (_, events), stored in zip(sent, stored_when_answered, strict=True):
        kept = {e["event_id"] for e in events} & {e["event_id"] for e in logged}
        assert kept <= stored, "answered with its verdict before its lines were stored"
    assert got == expected
    assert state(held.inner) == alone_state
    # the store equals `tracker ingest` of the union, in the order the server applied it
    lines = [e["raw"] for e in logged]
    with other_store(chdb_path) as ingested:
        summary = ingest(ingested, REGISTRY, BOOKS, official_calendar(), lines, "union.jsonl")
        assert summary.as_dict() == {"accepted": len(lines), "rejected": 0, "duplicates": 0}
        mine, theirs = state(held.inner), state(ingested)
        for part in ("ledger", "deadlines", "status"):
            assert mine[part] == theirs[part], part


@pytest.mark.parametrize("failure", ["outage", "half-written"])
def test_a_failed_group_write_is_applied_again_and_loses_nothing(
    failure: str, chdb_dsn: str, chdb_path: Path, tmp_path: Path
) -> None:
    """outage: the store refuses the whole write (FaultyStore); half-written: the events are
    logged and the deadlines insert fails (the write drill), so the rebuilt pipeline finishes
    that write and finds the group's events logged. Either way the requests were answered
    `accepted` once journaled, and the applier applies the group again until it is stored."""
    sent = [("centre", [notice(i), notice(i + 20, "fj.xm")]) for i in range(6)]
    fault_file = tmp_path / "outage"
    held = HeldStore(FaultyStore(ClickHouseStore(chdb_dsn), fault_file))
    served = serve(held, tmp_path / "p")
    served.service.linger_s = 0  # the failing group is tried within the test's 1.5 s
    first = served.post(*sent[0])
    assert held.holding.wait(60)
    drill = write_drill("error", 1, table="deadlines")
    with drill if failure == "half-written" else contextlib.nullcontext():
        if failure == "outage":
            fault_file.write_text("down")
        out = [served.post(*s) for s in sent[1:]]  # journaled while the first write is held
        held.release.set()
        time.sleep(1.5)  # the group fails at least once
        if failure == "half-written":
            served.service.settle(60)
    fault_file.unlink(missing_ok=True)
    assert (first.status_code, first.json()["accepted"]) == (200, 2)
    for response in out:
        assert (response.status_code, response.json()["accepted"]) == (200, 2), response.text
    served.service.settle(60)
    final = state(held.inner)
    assert sorted(e["event_id"] for e in final["events"]) == sorted(
        e["event_id"] for _, evs in sent for e in evs
    )
    # sent again: every line a duplicate, nothing doubled
    again = answers(served, sent)
    assert all(status == 200 for status, _ in again)
    assert sum(body["duplicates"] for _, body in again) == 12
    assert state(held.inner) == final
    with other_store(chdb_path) as ingested:
        lines = [e["raw"] for e in final["events"]]
        ingest(ingested, REGISTRY, BOOKS, official_calendar(), lines, "union.jsonl")
        theirs = state(ingested)
        for part in ("ledger", "deadlines", "status"):
            assert final[part] == theirs[part], part
