"""The worker's store thread (streams/sink_agent.py): the batch path opens the store when it
starts, not when the first record needs it (opening an embedded store took 0.2-2 s, in the first
batch's time); a store that cannot be opened then is opened again by the next call."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from sinks import MemoryStore
from sinks.base import Store
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
