"""The worker's store thread (streams/sink_agent.py): the batch path opens the store when it
starts, not when the first record needs it (opening an embedded store took 0.2-2 s, in the first
batch's time); a store that cannot be opened then is opened again by the next call."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime

import pytest

from schemas.ledger import LoggedEvent
from sinks import MemoryStore
from sinks.base import Batch, Store
from streams.sink_agent import StoreThread


class Opener:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.threads: list[str] = []
        self.opened = threading.Event()

    def __call__(self) -> Store:
        self.threads.append(threading.current_thread().name)
        if self.failures:
            self.failures -= 1
            raise OSError("the store is not up yet")
        self.opened.set()
        return MemoryStore()


def test_open_soon_opens_the_store_on_its_thread_before_any_call() -> None:
    opener = Opener()
    store = StoreThread(opener)
    store.open_soon()
    assert opener.opened.wait(10)
    assert asyncio.run(store.call(lambda s: isinstance(s, MemoryStore)))
    assert len(opener.threads) == 1 and opener.threads[0].startswith("store")
    store.close_now()


def test_a_store_not_opened_at_start_is_opened_by_the_next_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    opener = Opener(failures=1)
    store = StoreThread(opener)
    with caplog.at_level(logging.WARNING, logger="streams.sink_agent"):
        store.open_soon()
        assert asyncio.run(store.call(lambda s: isinstance(s, MemoryStore)))
    assert len(opener.threads) == 2
    assert "opening the store at start failed (the store is not up yet)" in caplog.text
    store.close_now()


class Preparing(MemoryStore):
    """A store that prepares its writes (as an embedded ClickHouse store does), noting where."""

    def __init__(self, prepares: bool = True) -> None:
        super().__init__()
        self.prepares = prepares
        self.threads: dict[str, str] = {}

    def prepare(self, batch: Batch) -> Batch | None:
        self.threads["prepare"] = threading.current_thread().name
        if not self.prepares:
            return None
        return batch

    def write_prepared(self, prepared: Batch) -> None:
        self.threads["write_prepared"] = threading.current_thread().name
        super().write(prepared)

    def write(self, batch: Batch) -> None:
        self.threads["write"] = threading.current_thread().name
        super().write(batch)


@pytest.mark.parametrize("prepares", [True, False])  # a store that prepares; one that does not
def test_a_write_is_started_at_once_and_prepared_on_the_callers_thread(prepares: bool) -> None:
    """The batch worker applies its next batch without giving the event loop a turn: a write
    that began only when the loop next ran waited for that apply (BENCHMARKS.md)."""
    sink = Preparing(prepares)
    store = StoreThread(lambda: sink)
    store.open_soon()
    at = datetime(2018, 3, 1, tzinfo=UTC)
    event = LoggedEvent(
        event_id="e1", partition=0, seq=1, unit="fj.gat", type="vuln.notice", at=at, year=2018,
        raw="{}", posted_by="test", received_at=at,
    )  # fmt: skip
    batch = Batch(events=[event])

    async def start_then_block() -> None:
        started = store.start_write(batch)
        deadline = time.monotonic() + 10
        while not list(sink.logged_events()) and time.monotonic() < deadline:
            time.sleep(0.01)  # the loop does not run: an apply holding it
        assert list(sink.logged_events()), "the write waited for the event loop"
        await started

    asyncio.run(start_then_block())
    caller = threading.current_thread().name
    if prepares:
        assert sink.threads == {"prepare": caller, "write_prepared": sink.threads["write_prepared"]}
        assert sink.threads["write_prepared"].startswith("store")
    else:
        assert sink.threads["prepare"] == caller and sink.threads["write"].startswith("store")
    store.close_now()
