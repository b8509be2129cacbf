"""`tracker post`: building, reading and checking events, and how they are keyed (no broker)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.__main__ import main
from streams.post import Poster, Validator, event_from_flags, raw_events
from streams.topics import Topics, partition_for
from tests.builders import REGISTRY

NOW = datetime(2018, 3, 1, 2, 0, tzinfo=UTC)


def test_event_from_flags() -> None:
    raw = event_from_flags(
        {"type": "outreach.notice", "unit": "gat", "notice_id": "W-1", "terminals": "a, b,,c"},
        NOW,
    )
    event = json.loads(raw)
    assert event["event_id"].startswith("post-") and len(event["event_id"]) == 21
    assert event["at"] == "2018-03-01T10:00:00+08:00"
    assert {k: v for k, v in event.items() if k not in ("event_id", "at")} == {
        "type": "outreach.notice",
        "unit": "gat",
        "notice_id": "W-1",
        "terminals": ["a", "b", "c"],
    }
    tick = json.loads(event_from_flags({"type": "clock.tick", "event_id": "t1"}, NOW))
    assert tick == {"event_id": "t1", "type": "clock.tick", "at": "2018-03-01T10:00:00+08:00"}


def test_raw_events_reads_jsonl_objects_and_arrays() -> None:
    assert list(raw_events('{"a":1}\n\n  {"b":2}  \n{broken\n')) == [
        (1, '{"a":1}'),
        (3, '{"b":2}'),
        (4, "{broken"),
    ]
    assert list(raw_events('{\n  "a": 1,\n  "b": "几"\n}\n')) == [(1, '{"a":1,"b":"几"}')]
    assert list(raw_events('[{"a":1},\n {"b":2}]')) == [(1, '{"a":1}'), (2, '{"b":2}')]
    assert list(raw_events("")) == []


def test_validator() -> None:
    check = Validator(REGISTRY, lambda: NOW).check
    good = '{"event_id":"e","type":"mlps.finding","unit":"gat","system":"s","at":"2018-03-01T09:00:00+08:00"}'
    event, reason = check(good)
    assert event is not None and reason is None
    assert check(good.replace('"gat"', '"nowhere"'))[1] == "unknown unit 'nowhere'"
    assert "naive timestamp" in (check(good.replace("+08:00", ""))[1] or "")
    assert "malformed JSON" in (check(good[:-1])[1] or "")
    assert "unknown field" in (check(good.replace('"s"', '"s","points":"5"'))[1] or "")
    ahead = (NOW + timedelta(minutes=11)).isoformat()
    assert "ahead of the wall clock" in (
        check(good.replace("2018-03-01T09:00:00+08:00", ahead))[1] or ""
    )


def test_partitioner_is_kafkas() -> None:
    partitions = list(range(4))
    for unit in ("fj.gat", "fj.fz", "fj.nd", "x" * 50, "几"):
        expected = DefaultPartitioner()(unit.encode(), partitions, partitions)
        assert partition_for(unit, 4) == expected


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int | None]] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, value, key, partition))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_keys_ticks_and_rejections() -> None:
    poster = Poster("unused:9092", Topics("p"), REGISTRY, partitions=4)
    producer = FakeProducer()
    poster._producer = producer  # type: ignore[assignment]
    county = '{"event_id":"e1","type":"vuln.notice","unit":"fz.gl.x","at":"2018-03-01T09:00:00+08:00","notice_id":"V","system":"s"}'
    tick = '{"event_id":"t1","type":"clock.tick","at":"2018-03-02T00:00:00+08:00"}'
    bad = county.replace("fz.gl.x", "nowhere")
    summary = asyncio.run(poster.post([(1, county), (2, bad), (3, tick)]))
    assert summary.as_dict() == {"sent": 2, "rejected": 1, "records": 5}
    assert summary.problems == [(2, "unknown unit 'nowhere'")]
    first, *ticks = producer.sent
    # keyed by the root of its jurisdiction: the city, so the city's caps see it in order
    assert first == ("p.events", county.encode(), b"fz", partition_for("fz", 4))
    assert [(t[2], t[3]) for t in ticks] == [(None, p) for p in range(4)]


def test_cli_wants_a_file_or_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["post", "--units", "x.yaml"]) == 2
    assert "either --file" in capsys.readouterr().err
