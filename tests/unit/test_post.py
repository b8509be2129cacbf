"""`tracker post`: building, reading and checking events, and how they are keyed (no broker)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.post import Poster, check_bootstrap, post_within
from streams.post_lines import Validator, event_from_flags, raw_events
from streams.topics import TopicError, Topics, partition_for
from tests.builders import REGISTRY
from tracker.cli import main

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


def _lines(data: bytes | str) -> list[tuple[int, str, str | None]]:
    return [(line.number, line.raw, line.problem) for line in raw_events(data)]


def test_raw_events_reads_jsonl_objects_and_arrays() -> None:
    assert _lines('{"a":1}\n\n  {"b":2}  \n{broken\n') == [
        (1, '{"a":1}', None),
        (3, '{"b":2}', None),
        (4, "{broken", None),
    ]
    assert _lines('{\n  "a": 1,\n  "b": "几"\n}\n') == [(1, '{"a":1,"b":"几"}', None)]
    assert _lines('[{"a":1},\n {"b":2}]') == [(1, '{"a":1}', None), (2, '{"b":2}', None)]
    assert _lines("") == []


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        # a line that is not UTF-8 is refused with its number; the others go on
        (b'{"a":1}\n\xff\xfe{"b":2}\n{"c":3}', [(1, '{"a":1}', None),
         (2, '\\xff\\xfe{"b":2}', "not UTF-8 (byte 1 of the line)"), (3, '{"c":3}', None)]),
        # CRLF and lone CR end lines as they do for `tracker ingest`
        (b'{"a":1}\r\n{"b":2}\r{"c":3}\r\n', [(1, '{"a":1}', None), (2, '{"b":2}', None),
                                             (3, '{"c":3}', None)]),
        # U+2028 inside a JSON string is part of the line, not a line break
        ('{"a":"x\u2028y"}\n'.encode(), [(1, '{"a":"x\u2028y"}', None)]),
        # a byte order mark in front of the first line is dropped
        (b'\xef\xbb\xbf{"a":1}\n', [(1, '{"a":1}', None)]),
        # an unterminated array is read line by line
        (b'[{"a":1},\n{"b":', [(1, '[{"a":1},', None), (2, '{"b":', None)]),
        # arrays nested far deeper than any parser's limit: judged (refused later), no crash
        (b"[" * 100_000, [(1, "[" * 100_000, None)]),
    ],
)  # fmt: skip
def test_raw_events_from_bytes(data: bytes, lines: list[tuple[int, str, str | None]]) -> None:
    assert _lines(data) == lines


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
    assert summary.as_dict() == {"sent": 2, "rejected": 1, "not_sent": 0, "records": 5}
    assert summary.problems == [(2, "unknown unit 'nowhere'")]
    first, *ticks = producer.sent
    # keyed by the root of its jurisdiction: the city, so the city's caps see it in order
    assert first == ("p.events", county.encode(), b"fz", partition_for("fz", 4))
    assert [(t[2], t[3]) for t in ticks] == [(None, p) for p in range(4)]


class RecordingProducer:
    """Stands in for aiokafka's producer: keeps the settings it was made with."""

    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **settings: Any) -> None:
        RecordingProducer.made.append(settings)

    async def start(self) -> None:
        pass


def test_a_bulk_post_sends_batches_of_up_to_256_kib(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tracker post` (and the live demo) produce a whole file. In batches of aiokafka's default
    16 KiB, the demo's file took longer to post and more of the broker's CPU than in batches of
    256 KiB, as `tracker serve` sends (BENCHMARKS.md, "`tracker post` in batches of 256 KiB").
    A batch waits for its linger (5 ms) only while the file's records do not fill it."""
    monkeypatch.setattr("streams.post.AIOKafkaProducer", RecordingProducer)
    RecordingProducer.made.clear()
    poster = Poster("127.0.0.1:9092", Topics("p"), REGISTRY, partitions=4)
    asyncio.run(poster.start(create_topics=False))
    (settings,) = RecordingProducer.made
    assert settings["max_batch_size"] == 256 * 1024
    assert settings["linger_ms"] == 5
    assert settings["enable_idempotence"] is True and settings["acks"] == "all"


def test_cli_wants_a_file_or_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["post", "--units", "x.yaml"]) == 2
    assert "either --file" in capsys.readouterr().err


GOOD = '{"event_id":"e%d","type":"mlps.finding","unit":"gat","system":"s","at":"2018-03-01T09:00:00+08:00"}'


def test_every_event_is_checked_before_the_network() -> None:
    """A broken line late in a file is reported even when the broker is never reached."""
    seen: list[str] = []

    class Recording(Poster):
        async def start(self, *, create_topics: bool = True) -> None:
            seen.append(f"start after {checks} checks")
            raise TopicError("no broker here")

    poster = Recording("unused:9092", Topics("p"), REGISTRY)
    checks = 0
    check = poster.validator.check

    def counting(raw: str) -> Any:
        nonlocal checks
        checks += 1
        return check(raw)

    poster.validator.check = counting  # type: ignore[method-assign]
    lines = [(i, GOOD % i) for i in range(1, 5)] + [(5, "{broken")]
    summary = asyncio.run(post_within(poster, lines, timeout_s=5))
    assert seen == ["start after 5 checks"]
    assert (summary.sent, summary.not_sent, summary.rejected) == (0, 4, 1)
    assert summary.unsent == [1, 2, 3, 4] and summary.problems[0][0] == 5
    assert summary.error == "no broker here"


@contextmanager
def silent_broker() -> Iterator[str]:
    """Accepts connections and never answers: a broker that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in held:
            conn.close()


@pytest.mark.parametrize("broker", ["closed", "silent"])
def test_cli_post_gives_up_in_bounded_time_with_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broker: str
) -> None:
    units = tmp_path / "units.yaml"
    units.write_text(UNITS_YAML, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(
        [(GOOD % i).replace('"gat"', '"fj.gat"').encode() for i in range(1, 4)]
        + [b"{broken", b"", b"\xff\xfe"]
    ))  # fmt: skip
    with contextlib.ExitStack() as stack:
        if broker == "closed":
            address = f"127.0.0.1:{_free_port()}"
        else:
            address = stack.enter_context(silent_broker())
        started = time.monotonic()
        code = main(["post", "--direct", "--units", str(units), "--file", str(events), "--bootstrap", address,
                     "--timeout", "2", "--json"])  # fmt: skip
        elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code == 2
    assert elapsed < 2 + 10, elapsed  # the timeout, plus the grace to close the producer
    summary = json.loads(out.splitlines()[-1])
    assert {k: summary[k] for k in ("sent", "not_sent", "rejected")} == {
        "sent": 0, "not_sent": 3, "rejected": 2}  # fmt: skip
    assert summary["broker"] == address and summary["broker_from"] == "--bootstrap"
    assert summary["not_sent_lines"] == [1, 2, 3]
    assert [r["line"] for r in summary["rejected_lines"]] == [4, 6]
    assert f"tracker post: not sent: 3 event(s), lines 1-3: broker {address} (--bootstrap)" in err
    assert "tracker post: rejected: line 6: not UTF-8" in err


def test_cli_post_names_the_broker_and_where_it_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    units = tmp_path / "units.yaml"
    units.write_text(UNITS_YAML, encoding="utf-8")
    address = f"127.0.0.1:{_free_port()}"
    flags = ["post", "--direct", "--units", str(units), "--type", "clock.tick", "--timeout", "1"]
    monkeypatch.setenv("TRACKER_KAFKA", address)
    assert main(flags) == 2
    out, err = capsys.readouterr()
    assert f"broker {address} ($TRACKER_KAFKA)" in out + err
    monkeypatch.delenv("TRACKER_KAFKA")
    assert main(flags) == 2
    out, err = capsys.readouterr()
    assert "broker 127.0.0.1:9092 (default: no --bootstrap, no $TRACKER_KAFKA)" in out


def test_retries_say_what_they_wait_for_and_the_timeout_ends_them() -> None:
    """An unreachable broker (a closed port) is retried, each wait said, until the timeout."""
    address = f"127.0.0.1:{_free_port()}"
    said: list[str] = []
    started = time.monotonic()
    summary = asyncio.run(post_within(Poster(address, Topics("p"), REGISTRY),
                                      [(1, GOOD % 1)], timeout_s=3, on_wait=said.append))  # fmt: skip
    elapsed = time.monotonic() - started
    assert elapsed < 3 + 6, elapsed
    assert said, "no word while waiting"
    pattern = re.escape(f"waiting for Kafka at {address} (attempt ") + (
        r"(\d+) of (\d+), next in [\d.]+s\): KafkaConnectionError: Unable to bootstrap"
    )
    found = [re.fullmatch(pattern, line) for line in said]
    assert all(found), said
    attempts = [int(m.group(1)) for m in found if m]
    assert attempts == list(range(2, 2 + len(said)))  # counted, starting with the second
    assert (summary.sent, summary.not_sent) == (0, 1)
    assert summary.error is not None and "\n" not in summary.error
    assert address in summary.error and "Unable to bootstrap" in summary.error


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1:x", "port"),  # not a number: was an internal error
        ("127.0.0.1:0", "port"),  # out of range
        ("127.0.0.1:70000", "port"),  # out of range
        (":9092", "host"),  # no host
        ("a:9092,,b:9092", "host"),  # an empty entry in the list
        ("", "host"),  # nothing at all
    ],
)
def test_a_bad_broker_address_is_refused_before_the_network(address: str, why: str) -> None:
    class Recording(Poster):
        async def start(self, *, create_topics: bool = True) -> None:
            raise AssertionError("the network was tried")

    summary = asyncio.run(post_within(Recording(address, Topics("p"), REGISTRY),
                                      [(1, GOOD % 1), (2, "{broken")], timeout_s=5))  # fmt: skip
    assert (summary.sent, summary.not_sent, summary.rejected) == (0, 1, 1)
    assert summary.error is not None and why in summary.error and repr(address) in summary.error


@pytest.mark.parametrize("address", ["127.0.0.1:9092", "a:1,b:2", "[::1]:9092", "kafka"])
def test_good_broker_addresses_pass(address: str) -> None:
    assert check_bootstrap(address) is None


def test_cli_post_to_an_unreachable_broker_says_so_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No logins: an integration session's broker (TRACKER_KAFKA_CREDENTIALS) would lend its
    # admin's, and an admin client spends the whole timeout on its first attempt.
    for name in ("TRACKER_KAFKA_CREDENTIALS", "TRACKER_KAFKA_USER", "TRACKER_KAFKA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRACKER_DATA", str(tmp_path / "data"))
    units = tmp_path / "units.yaml"
    units.write_text(UNITS_YAML, encoding="utf-8")
    address = f"127.0.0.1:{_free_port()}"
    code = main(["post", "--direct", "--units", str(units), "--type", "clock.tick", "--bootstrap", address,
                 "--timeout", "3", "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith(f"tracker: waiting for Kafka at {address} (attempt 2 of "), err
    assert all(line.startswith("tracker: waiting for Kafka at ") for line in lines[:-1]), err
    assert lines[-1].startswith("tracker post: not sent: 1 event(s)"), err
    assert json.loads(out.splitlines()[-1])["not_sent"] == 1  # stdout: the summary only
    assert len(out.splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


UNITS_YAML = """
assessments:
  - {year: 2018, tier: provincial-dept, rulebook: fj-2018-provincial-dept}
units:
  - {id: fj.gat, name: 福建省公安厅, tier: provincial-dept}
"""
