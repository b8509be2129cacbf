"""The processor's output side: send a record's outputs, and ack input records in offset order
once every output they produced is acknowledged by the broker."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from faust.types import TP

from streams.holds import Holds
from streams.partition import Outputs
from streams.topics import Topics

log = logging.getLogger(__name__)

# The producer's send(topic, key, value, partition, timestamp, headers): a future, resolved
# when the broker has the record.
Send = Callable[..., Awaitable["asyncio.Future[Any]"]]


class Emitter:
    """Sends a record's outputs and acks input records, in order, once their outputs are
    durable. A send that fails for good stops the worker before its record is acked."""

    def __init__(self, send: Send, topics: Topics, holds: Holds) -> None:
        self.send = send  # the app's producer; a stand-in in unit tests
        self.topics = topics
        self.holds = holds
        self.pending: deque[tuple[TP, int, int, list[asyncio.Future[Any]]]] = deque()
        self.failed = False
        self.processed: dict[int, int] = {}
        self.stuck: dict[TP, int] = {}

    async def emit(self, out: Outputs, partition: int) -> list[asyncio.Future[Any]]:
        """Hand the outputs to the producer; the futures resolve when the broker has them."""
        send, t = self.send, self.topics
        futures: list[Any] = []
        if out.logged is not None:
            value = out.logged.model_dump_json().encode()
            futures.append(await send(t.accepted, None, value, partition, None, None))
        for entry in out.entries:
            key, value = entry.unit.encode(), entry.model_dump_json().encode()
            futures.append(await send(t.ledger, key, value, None, None, None))
        for seen in out.seen:  # on the ledger topic, beside the entries (streams/sink_agent.py)
            key, value = seen.unit.encode(), seen.model_dump_json().encode()
            futures.append(await send(t.ledger, key, value, None, None, None))
        for state in out.deadlines:
            key, value = state.unit.encode(), state.model_dump_json().encode()
            futures.append(await send(t.deadlines, key, value, None, None, None))
        if out.letter is not None:
            value = out.letter.model_dump_json().encode()
            futures.append(await send(t.dead_letters, None, value, partition, None, None))
        for warning in out.warnings:
            key, value = warning.unit.encode(), _json(warning.as_json())
            futures.append(await send(t.warnings, key, value, None, None, None))
        return futures

    def hold(
        self, tp: TP, covered_from: int, offset: int, futures: list[asyncio.Future[Any]]
    ) -> None:
        """Release the input records `covered_from`..`offset` once `futures` are done."""
        self.pending.append((tp, covered_from, offset, futures))

    def release(self) -> None:
        while self.pending and not self.failed:
            tp, covered_from, offset, futures = self.pending[0]
            if not all(f.done() for f in futures):
                return
            errors = [
                "cancelled" if f.cancelled() else f.exception()
                for f in futures
                if f.cancelled() or f.exception() is not None
            ]
            if errors:
                self.failed = True
                log.critical(
                    "outputs of %s/%d/%d could not be produced (%s); stopping before acking it",
                    tp.topic,
                    tp.partition,
                    offset,
                    errors[0],
                )
                os.kill(os.getpid(), signal.SIGTERM)
                return
            self.pending.popleft()
            self.processed[tp.partition] = offset
            stuck = self.holds.release_through(tp, covered_from, offset)
            if stuck is not None and self.stuck.get(tp) != stuck:
                self.stuck[tp] = stuck
                log.error(
                    "%s/%d: record %d was fetched but never processed; its partition commits "
                    "nothing past it until it is fetched again (rebalance or restart)",
                    tp.topic,
                    tp.partition,
                    stuck,
                )


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
