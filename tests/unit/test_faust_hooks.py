"""streams/holds.py leans on Faust internals that are not public API. These tests exercise each
of them on the installed faust-streaming, so an upgrade that changes one fails here, loudly and by
name, instead of silently losing records in the crash tests (pyproject pins faust-streaming <0.16).
"""

from __future__ import annotations

import inspect

import faust
import pytest
from faust.types import TP, Message

from streams.holds import Holds


@pytest.fixture
def app() -> faust.App:
    # never started: no broker is contacted
    return faust.App("hooks-test", broker="kafka://127.0.0.1:1", store="memory://")


def message(offset: int) -> Message:
    return Message("t", 0, offset, 0.0, 0, None, None, b"{}", None, tp=TP("t", 0), generation_id=1)


def test_topic_compiles_decode_into_an_instance_attribute(app: faust.App) -> None:
    # HeldTopic overrides the private Topic._compile_decode and wraps the `decode` it sets
    assert inspect.signature(faust.Topic._compile_decode).parameters.keys() == {"self"}
    topic = Holds(app).topic_class()(app, topics=["t"])
    assert "decode" in vars(topic), "Topic no longer sets decode per instance"
    assert topic.decode.__name__ == "held_decode"


def test_derived_topics_keep_the_held_class(app: faust.App) -> None:
    # agents derive and clone their channel: the subclass (and so the hold) must survive that
    held = Holds(app).topic_class()
    topic = held(app, topics=["t"])
    assert type(topic.derive_topic(topics=["u"])) is held
    assert type(topic.clone()) is held


async def test_decoded_messages_are_held_with_an_extra_reference(app: faust.App) -> None:
    holds = Holds(app)
    topic = holds.topic_class()(app, topics=["t"], value_serializer="raw")
    msg = message(7)
    before = msg.refcount
    await topic.decode(msg)
    assert msg.refcount == before + 1
    assert holds.lowest(msg.tp) == 7


def test_an_ack_is_final_only_when_no_reference_is_left(app: faust.App) -> None:
    # Holds relies on Message.incref/decref/ack(consumer): the stream's own ack of a skipped
    # message must not be the final one while our reference is held.
    assert list(inspect.signature(Message.ack).parameters)[:2] == ["self", "consumer"]
    msg = message(3)
    msg.incref()  # the stream's reference
    msg.incref()  # ours
    assert msg.ack(app.consumer) is False and not msg.acked
    msg.decref()  # Holds._release drops ours, then acks
    assert msg.ack(app.consumer) is True and msg.acked


def test_released_messages_get_their_final_ack_and_held_ones_do_not(app: faust.App) -> None:
    holds = Holds(app)
    low, mid, high = message(1), message(2), message(3)
    for m in (low, mid, high):
        m.incref()  # the stream's reference, which Faust's skip-ack drops
        holds.hold(m)
        m.ack(app.consumer)  # Faust acks a skipped message on its own: not final
    assert not any(m.acked for m in (low, mid, high))
    # offset 1 was fetched but not covered: it blocks the range after it (tests/unit/test_holds.py)
    assert holds.release_through(low.tp, covered_from=2, offset=2) == 1
    assert not any(m.acked for m in (low, mid, high))
    assert holds.release_through(low.tp, covered_from=1, offset=3) is None
    assert all(m.acked for m in (low, mid, high))
