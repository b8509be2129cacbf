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

    def release_through(self, tp: TP, covered_from: int, offset: int) -> None:
        """Release the held messages of `tp` from `covered_from` up to `offset`: the processor
        has made the outputs of every record in that range durable (skipped ones included, see
        Processor.handle). A message below the range was fetched but never processed: it stays
        held, so the commit waits for it to be fetched again."""
        heap = self._held.get(tp)
        while heap and heap[0][0] <= offset:
            message = heapq.heappop(heap)[2]
            if message.offset >= covered_from:
                self._release(message)
            else:  # dropped from the heap but never acked: the commit stops before it
                log.warning("%s offset %d was fetched but not processed: not committing it",
                            tp, message.offset)  # fmt: skip

    def release(self, messages: Sequence[Message]) -> None:
        """Release exactly these messages (the sink: a skipped record stays held, so the commit
        cannot pass it until it is fetched again and written)."""
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
