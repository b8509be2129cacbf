"""Keeping Faust from committing an input offset before its work is done.

Faust commits the contiguous prefix of *acked* offsets. Besides the acks an agent makes, a
Faust stream acks by itself every message it skips - those fetched while flow control is
suspended during a rebalance or recovery, or stamped with an older consumer generation - on the
assumption that a seek to the committed offset will fetch them again. If a commit happens first,
the skipped records are committed without ever having been processed: lost.

So every message of our topics gets one extra reference when it is decoded (before any stream
sees it) and is registered here; no ack by Faust can then be the final one. The agent releases
a message - drops the reference and acks it - only when its work is durable: the processor's
outputs acknowledged by the broker, the sink's batch written to the store.

Holding alone fails when Faust skips a message and never fetches it again (it did at every
start while the worker had a Faust table: records fetched during its recovery never reached the
agents). Faust's commit then stops for good behind two such records ("pipeline stuck"), or -
its head-of-queue check is off by one - commits past a single one: a lost row. The agents
therefore deal with skipped records themselves: the processor produces their outputs from the
rebuild (Processor.handle) and never releases anything past one it could not cover; the sink
writes the held skipped messages it finds among a batch's (`skipped`) before releasing it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import faust
from faust.types import TP, Message

log = logging.getLogger(__name__)


class Holds:
    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._held: dict[TP, list[tuple[int, int, Message]]] = defaultdict(list)
        self._seq = itertools.count()

    def hold(self, message: Message) -> None:
        message.incref()
        heapq.heappush(self._held[message.tp], (message.offset, next(self._seq), message))

    def lowest(self, tp: TP) -> int | None:
        heap = self._held.get(tp)
        return heap[0][0] if heap else None

    def release_through(self, tp: TP, covered_from: int, offset: int) -> int | None:
        """Release the held messages of `tp` from `covered_from` up to `offset`: the processor
        has made the outputs of every record in that range durable (skipped ones included, see
        Processor.handle). A held message below the range was fetched but never processed:
        it and everything after it stay held, so no commit can pass it (until a rebalance or a
        restart fetches it again); its offset is returned (None if there is none)."""
        heap = self._held.get(tp)
        while heap and heap[0][0] <= offset:
            if heap[0][0] < covered_from:
                return heap[0][0]
            self._release(heapq.heappop(heap)[2])
        return None

    def skipped(self, messages: Sequence[Message]) -> list[Message]:
        """Held messages of the batch's partitions that are not in the batch but come before
        its last offset in their partition: a stream delivers a partition in offset order, so
        these were fetched and never delivered."""
        last: dict[TP, int] = {}
        for m in messages:
            last[m.tp] = max(m.offset, last.get(m.tp, m.offset))
        batch = {id(m) for m in messages}
        return [
            item[2]
            for tp, offset in last.items()
            for item in sorted(self._held.get(tp, []))
            if item[0] < offset and id(item[2]) not in batch
        ]

    def release(self, messages: Sequence[Message]) -> None:
        """Release exactly these messages (the sink's written batch, and the skipped records it
        wrote with it)."""
        done = {id(m) for m in messages}
        for tp in {m.tp for m in messages}:
            heap = self._held.get(tp, [])
            kept = [item for item in heap if id(item[2]) not in done]
            for item in heap:
                if id(item[2]) in done:
                    self._release(item[2])
            heapq.heapify(kept)
            self._held[tp] = kept

    def forget(self, tps: Iterable[TP]) -> None:
        """Revoked partitions: their messages will be fetched again by their next owner."""
        for tp in tps:
            self._held.pop(tp, None)

    def _release(self, message: Message) -> None:
        message.decref()  # our reference; the ack below drops the stream's (if still there)
        message.ack(self.app.consumer)

    def topic_class(self) -> type[faust.Topic]:
        """A Topic whose decoded messages are held (agents clone it, keeping the class)."""
        holds = self

        class HeldTopic(faust.Topic):
            def _compile_decode(self) -> None:
                # Topic compiles `decode` into an instance attribute: wrap that one.
                super()._compile_decode()
                decode = self.decode

                async def held_decode(message: Message, *, propagate: bool = False) -> Any:
                    event = await decode(message, propagate=propagate)
                    holds.hold(message)
                    return event

                self.decode = held_decode  # type: ignore[method-assign]

        return HeldTopic
