"""What is posted, read and checked before any of it reaches the network: the lines of a file
(JSONL, one JSON object or an array of them) or one event made of `tracker post`'s flags, each
judged against the contract.

`Validator` rejects outright what needs no engine to judge (bad JSON, schema, unknown unit, a
timestamp too far ahead), and a line that is not UTF-8 is refused as it is read; `line_ranges`
names the lines back to whoever posted them. Both ways of posting share this: the producer
(``streams/post.py``) and `tracker serve`'s door (``tracker/serve/service.py``), with its client
(``tracker/serve/client.py``), which read and judge lines without the Kafka client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.clock import SHANGHAI, iso
from engine.core import MAX_AHEAD
from schemas.events import ClockTick, Event, EventError, parse_event
from schemas.registry import Registry

# `tracker post` flags that become event fields (dest -> field); `--terminals a,b` is a list.
FIELD_FLAGS = (
    "notice_id",
    "system",
    "due",
    "terminals",
    "cause",
    "terminal",
    "finding",
    "incident_id",
    "control",
    "signal_id",
    "target_event_id",
    "reason",
)


def event_from_flags(values: dict[str, Any], now: datetime) -> str:
    """One event as compact JSON from `tracker post` flags (absent flags are left out)."""
    event: dict[str, Any] = {
        "event_id": values.get("event_id") or f"post-{uuid.uuid4().hex[:16]}",
        "type": values["type"],
    }
    if values.get("unit"):
        event["unit"] = values["unit"]
    event["at"] = values.get("at") or now.astimezone(SHANGHAI).replace(microsecond=0).isoformat()
    for name in FIELD_FLAGS:
        value = values.get(name)
        if value is None:
            continue
        if name == "terminals":
            value = [t.strip() for t in str(value).split(",") if t.strip()]
        event[name] = value
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Line:
    """One event's text and where it was: a line number (JSONL) or a position (JSON array).
    `problem` says why it cannot be an event before it is even parsed (not UTF-8)."""

    number: int
    raw: str
    problem: str | None = None


def raw_events(data: bytes | str) -> Iterator[Line]:
    """The events of a file: JSONL, one JSON object (pretty-printed or not) or a JSON array of
    objects. Blank lines are skipped; a leading UTF-8 byte order mark is dropped. A line that is
    not UTF-8 is kept, shown with \\x escapes, and refused."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    data = data.removeprefix(b"\xef\xbb\xbf")
    stripped = data.strip()
    if stripped.startswith(b"[") or (stripped.startswith(b"{") and b"\n" in stripped):
        try:
            doc = json.loads(stripped.decode("utf-8"))
        except (ValueError, RecursionError):
            doc = None  # JSONL after all (or broken): judged line by line below
        if isinstance(doc, list | dict):
            items = doc if isinstance(doc, list) else [doc]
            for i, item in enumerate(items, 1):
                yield Line(i, json.dumps(item, ensure_ascii=False, separators=(",", ":")))
            return
    # the line breaks of a text file read by `tracker ingest`: \n, \r\n and \r
    for number, chunk in enumerate(data.splitlines(), 1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            shown = chunk.decode("utf-8", "backslashreplace").strip()
            yield Line(number, shown, f"not UTF-8 (byte {exc.start + 1} of the line)")
            continue
        if text.strip():
            yield Line(number, text.strip())


class Validator:
    """What can be judged before an event reaches the engine."""

    def __init__(self, registry: Registry, clock: Callable[[], datetime]) -> None:
        self.registry = registry
        self.clock = clock

    def check(self, raw: str) -> tuple[Event | None, str | None]:
        try:
            event = parse_event(raw)
        except EventError as exc:
            return None, exc.reason
        except Exception as exc:  # whatever the input does to the parser, it is one refusal
            return None, f"unreadable: {type(exc).__name__}"
        if not isinstance(event, ClockTick) and self.registry.unit(event.unit) is None:
            return None, f"unknown unit {event.unit!r}"
        if event.at > self.clock() + MAX_AHEAD:
            return None, f"at {iso(event.at)} is more than 10 minutes ahead of the wall clock"
        return event, None


def line_ranges(numbers: Iterable[int]) -> str:
    """`1-3, 7, 9-10`: line numbers as short ranges."""
    out: list[str] = []
    start = prev = None
    for n in sorted(set(numbers)):
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = n
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ", ".join(out)
