"""Holds (streams/holds.py) as pure bookkeeping: a stub consumer records the acks."""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.types import TP, Message
from faust.types.tuples import ConsumerMessage

from streams.holds import Holds

LEDGER = TP("p.ledger", 0)
EVENTS = TP("p.events", 0)


class Consumer:
    def __init__(self) -> None:
        self.acked: list[tuple[TP, int]] = []

    def ack(self, message: Message) -> bool:
        self.acked.append((message.tp, message.offset))
        return True


class App:
    def __init__(self) -> None:
        self.consumer = Consumer()


def held(tp: TP, *offsets: int) -> tuple[Holds, App, dict[int, Message]]:
    app = App()
    holds = Holds(cast(faust.App, app))
    messages = {}
    for offset in offsets:
        message: Message = ConsumerMessage(
            tp.topic, tp.partition, offset, 0.0, 0, None, None, b"v", None, tp=tp
        )
        message.incref()  # the stream's reference
        holds.hold(message)
        message.ack(cast(Any, app.consumer))  # the stream acks: not final, we hold it
        messages[offset] = message
    return holds, app, messages


def test_nothing_is_acked_until_released() -> None:
    holds, app, _ = held(EVENTS, 0, 1, 2)
    assert app.consumer.acked == []
    assert holds.release_through(EVENTS, 0, 1) is None
    assert app.consumer.acked == [(EVENTS, 0), (EVENTS, 1)]


def test_the_processor_never_releases_past_a_record_it_did_not_cover() -> None:
    holds, app, _ = held(EVENTS, 3, 4, 5, 6)
    # outputs produced for 5..6 only: 3 was fetched but never processed
    assert holds.release_through(EVENTS, 5, 6) == 3
    assert app.consumer.acked == []  # acking 4..6 would let Faust's commit pass 3
    assert holds.lowest(EVENTS) == 3


def test_the_sink_finds_the_records_that_never_reached_it() -> None:
    holds, app, messages = held(LEDGER, 0, 1, 2, 3, 4, 5)
    batch = [messages[0], messages[1], messages[4], messages[5]]  # 2 and 3 were skipped
    skipped = holds.skipped(batch)
    assert [m.offset for m in skipped] == [2, 3]
    holds.release([*skipped, *batch])
    assert sorted(o for _, o in app.consumer.acked) == [0, 1, 2, 3, 4, 5]
    assert holds.lowest(LEDGER) is None


def test_records_after_the_batch_are_not_skipped() -> None:
    holds, _, messages = held(LEDGER, 7, 8, 9)
    assert holds.skipped([messages[7], messages[8]]) == []  # 9 comes in the next batch
