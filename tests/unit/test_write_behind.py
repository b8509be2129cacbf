"""`tracker ingest`'s store writes behind the engine (tracker/write_behind.py, issue 12): one write
in flight, in order, its error raised by the next write or wait; and an ingest writing behind
stores what one writing in place stores."""

from __future__ import annotations

import threading

import pytest

from sinks import Batch, MemoryStore, StoreError
from tests import builders
from tests.unit.test_batch_signing import notices
from tests.unit.test_chains import NOW, SIGNER
from tracker.pipeline import Tracker
from tracker.write_behind import WriteBehind


class Gated:
    """Writes that wait for a gate, recording the order they ran in and their thread."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.written: list[int] = []
        self.threads: set[str] = set()
        self.fail_at: int | None = None

    def __call__(self, batch: Batch) -> None:
        self.gate.wait(10)
        self.threads.add(threading.current_thread().name)
        n = len(batch.events)
        if n == self.fail_at:
            raise StoreError(f"write of {n} failed")
        self.written.append(n)


def batch(n: int) -> Batch:
    return Batch(events=[None] * n)  # type: ignore[list-item]  # only counted here


def test_writes_run_in_order_off_the_callers_thread_one_at_a_time() -> None:
    store = Gated()
    writes = WriteBehind(store, background=True)
    writes.write(batch(1))  # returns at once: the write waits for the gate on its thread
    assert store.written == []
    store.gate.set()
    writes.write(batch(2))  # waits for the first
    assert store.written == [1]
    writes.wait()
    assert store.written == [1, 2]
    assert threading.current_thread().name not in store.threads
    writes.close()


@pytest.mark.parametrize("then", ["write", "wait"])
def test_a_failed_write_is_raised_by_the_next_call_and_nothing_after_it_is_written(
    then: str,
) -> None:
    store = Gated()
    store.fail_at = 1
    store.gate.set()
    writes = WriteBehind(store, background=True)
    writes.write(batch(1))
    with pytest.raises(StoreError, match="write of 1 failed"):
        if then == "write":
            writes.write(batch(2))
        else:
            writes.wait()
    writes.close()
    assert store.written == []


def test_close_waits_for_the_write_in_flight_and_keeps_its_error_to_itself() -> None:
    store = Gated()
    store.fail_at = 3
    writes = WriteBehind(store, background=True)
    writes.write(batch(3))
    store.gate.set()
    writes.close()  # no error: the caller is ending on an error of its own, or saw it already
    assert store.written == []


def test_in_place_writes_return_once_stored() -> None:
    store = Gated()
    store.gate.set()
    WriteBehind(store).write(batch(4))
    assert store.written == [4] and store.threads == {threading.current_thread().name}


@pytest.mark.parametrize("batch_size", [1, 3, 20])
def test_an_ingest_writing_behind_stores_what_one_writing_in_place_stores(batch_size: int) -> None:
    lines = [*notices(25), "not json", notices(1)[0]]  # a dead letter, and a duplicate
    stores = []
    for behind in (False, True):
        store = MemoryStore()
        store.save_config(builders.REGISTRY, builders.BOOKS)
        fed = Tracker(
            store,
            builders.REGISTRY,
            builders.BOOKS,
            builders.calendar(),
            clock=lambda: NOW,
            batch_size=batch_size,
            signer=SIGNER,
            write_behind=behind,
        )
        try:
            fed.feed_lines(lines, "f")
            fed.checkpoint()
        finally:
            fed.close()
        stores.append(store)
    in_place, behind_ = stores
    assert list(behind_.logged_events()) == list(in_place.logged_events())
    assert behind_.ledger() == in_place.ledger()
    assert behind_.deadlines() == in_place.deadlines()
    assert behind_.dead_letters() == in_place.dead_letters()
    assert behind_.chain_heads() == in_place.chain_heads()
    assert behind_.committed_seq() == in_place.committed_seq() > 0
