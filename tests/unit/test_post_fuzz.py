"""`tracker post`'s reading and checking path under random bytes and random JSON (issue 7):
every non-blank line is accounted for once - sent, not sent, or rejected with its reason - and
nothing crashes. The producer is a stand-in that confirms or fails records at random; the real
broker runs in tests/integration/test_post_broker.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka.errors import KafkaTimeoutError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schemas.events import parse_event
from streams.post import Poster, post_within
from streams.post_lines import raw_events
from streams.topics import Topics
from tests.builders import REGISTRY

VALID = [
    {"event_id": "v1", "type": "mlps.finding", "unit": "gat", "system": "s",
     "at": "2018-03-01T09:00:00+08:00"},
    {"event_id": "v2", "type": "vuln.notice", "unit": "fz.gl.x", "notice_id": "V", "system": "s",
     "at": "2018-03-01T09:00:00+08:00"},
    {"event_id": "t1", "type": "clock.tick", "at": "2018-03-02T00:00:00+08:00"},
]  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def event_like(draw: st.DrawFn) -> bytes:
    """A valid event, maybe with one field changed, dropped or added."""
    event: dict[str, Any] = dict(draw(st.sampled_from(VALID)))
    event["event_id"] = draw(st.text(min_size=1, max_size=16) | st.text(max_size=130))
    change = draw(st.sampled_from(["none", "none", "none", "set", "drop", "add"]))
    key = draw(st.sampled_from(sorted(event)))
    if change == "set":
        event[key] = draw(json_values)
    elif change == "drop":
        del event[key]
    elif change == "add":
        event[draw(st.text(max_size=8))] = draw(json_values)
    return json.dumps(event, ensure_ascii=draw(st.booleans())).encode()


line = st.one_of(
    event_like(),
    event_like(),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.sampled_from([b"", b"   ", b"\t", b"\xef\xbb\xbf", b"\xff\xfe", "\u3000".encode()]),
)
files = st.tuples(st.lists(line, max_size=12), st.sampled_from([b"\n", b"\r\n"])).map(
    lambda parts: parts[1].join(parts[0])
)


class RandomProducer:
    """Confirms each record, or fails it as a broker timeout would, as the test decides."""

    def __init__(self, fails: list[bool]) -> None:
        self.fails = fails
        self.sent: list[bytes] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None,
                   partition: int | None = None) -> asyncio.Future[Any]:  # fmt: skip
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fails and self.fails[len(self.sent) % len(self.fails)]:
            done.set_exception(KafkaTimeoutError())
        else:
            done.set_result(None)
        self.sent.append(value)
        return done

    async def stop(self) -> None:
        pass


class OfflinePoster(Poster):
    def __init__(self, producer: RandomProducer) -> None:
        super().__init__("unused:9092", Topics("fuzz"), REGISTRY, partitions=4)
        self.stand_in = producer

    async def start(self, *, create_topics: bool = True) -> None:
        self._producer = self.stand_in  # type: ignore[assignment]


def expected_lines(data: bytes) -> set[int]:
    """The positions the contract says must be accounted for: the items of a JSON document
    (an array, or an object over several lines), else every line that is not blank - a line
    that is not UTF-8 is not blank."""
    body = data.removeprefix(b"\xef\xbb\xbf")
    stripped = body.strip()
    if stripped.startswith(b"[") or (stripped.startswith(b"{") and b"\n" in stripped):
        try:
            doc = json.loads(stripped.decode("utf-8"))
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, list):
            return set(range(1, len(doc) + 1))
        if isinstance(doc, dict):
            return {1}
    numbered = set()
    for number, chunk in enumerate(body.splitlines(), 1):
        try:
            blank = not chunk.decode("utf-8").strip()
        except UnicodeDecodeError:
            blank = False
        if not blank:
            numbered.add(number)
    return numbered


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=files, fails=st.lists(st.booleans(), max_size=5))
def test_every_line_is_sent_not_sent_or_rejected(data: bytes, fails: list[bool]) -> None:
    producer = RandomProducer(fails)
    summary = asyncio.run(post_within(OfflinePoster(producer), raw_events(data), timeout_s=30))
    event(f"sent: {bool(summary.sent)}, not sent: {bool(summary.not_sent)}")
    rejected = [n for n, _ in summary.problems]
    assert all(isinstance(r, str) and r for _, r in summary.problems)
    accounted = rejected + summary.unsent
    assert len(accounted) == len(set(accounted))  # no line counted twice
    assert summary.sent + summary.not_sent + summary.rejected == len(expected_lines(data))
    assert set(accounted) <= expected_lines(data)
    # only checked events go out, and what is reported sent was handed to the broker
    assert summary.records <= len(producer.sent)
    for value in producer.sent:
        parse_event(value)
    if summary.not_sent:
        assert summary.error
    else:
        assert summary.error is None
