"""The demo's store when the other demo mode filled it (docs/audit.md, "One kind of writer per
event log").

`tracker demo --embedded` logs the stream as the in-process intake does, `tracker demo` (live)
through the Kafka worker; a store's event log is only ever written by one kind of writer
(sinks/event_log.py), and both modes use the default store. So that the two commands work one
after the other, as the README has them:

- the live demo on a store whose event log the intake wrote starts that store afresh - but only
  when it holds nothing but this demo's events (and clock ticks, which carry no one's data);
  anything else there is refused, naming the store, and nothing is deleted;
- the embedded demo on a store whose event log the live demo's worker wrote does not write into
  it: it shows it as the live pipeline left it (the same stream, the same deductions), again
  only when it holds nothing but this demo's events. Starting it afresh would not do: the
  worker's topic keeps the stream and its consumer group has passed it, so a later live demo
  would find every record a duplicate and leave the fresh store empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sinks import Store, open_store
from sinks.connection import connect, split_dsn
from sinks.dsn import mask
from sinks.event_log import EventLogWriter
from tracker.errors import UserError


@dataclass(frozen=True, slots=True)
class DemoContent:
    demo_events: int  # events of this demo stream in the log (distinct ids)
    stream_events: int  # events in the demo stream
    other_events: int  # events in the log that are neither the stream's nor clock ticks


def demo_ids(lines: Iterable[str], bad: Iterable[str] = ()) -> set[str]:
    """The event ids of the demo stream's lines but its `bad` ones (rejected, never logged)."""
    ids = set()
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("event_id"), str):
            ids.add(value["event_id"])
    return ids - demo_ids(bad) if bad else ids


def content(store: Store, ids: set[str]) -> DemoContent:
    found: set[str] = set()
    other = 0
    for event in store.logged_events():
        if event.event_id in ids:
            found.add(event.event_id)
        elif event.type != "clock.tick":
            other += 1
    return DemoContent(len(found), len(ids), other)


def _refusal(dsn: str, writer: EventLogWriter, other: int, mode: str) -> UserError:
    return UserError(
        f"the store {mask(dsn)} holds an event log written by {writer.describe()}, with "
        f"{other} event(s) that are not the demo's; the {mode} demo cannot write into it and "
        "leaves it alone: give the demo another store (--store chdb:///path/elsewhere, or "
        "TRACKER_DATA), or remove that one if you no longer need it (docs/audit.md)"
    )


def live_demo_store(dsn: str, ids: set[str]) -> str | None:
    """Make the store ready for the live demo's worker (of the default topics); returns what
    was done, to be printed, or None when the store is new or the live demo's already."""
    from streams.topics import Topics

    store = open_store(dsn)
    try:
        recorded = store.event_log_writer()
        if recorded is None or recorded.topic == Topics().events:
            return None
        found = content(store, ids)
    finally:
        store.close()
    if found.other_events:
        raise _refusal(dsn, recorded, found.other_events, "live")
    _, db = split_dsn(dsn)
    client = connect(dsn)
    try:
        client.command(f"DROP DATABASE IF EXISTS `{db}`")
    finally:
        client.close()
    return (
        f"demo: the store {mask(dsn)} held only the demo's events, logged by "
        f"{recorded.describe()}; the live pipeline's worker cannot continue that log, so the "
        "store starts afresh"
    )


def embedded_demo_store(store: Store, dsn: str, ids: set[str]) -> str | None:
    """None when the embedded demo may ingest into `store`; else what to print instead of
    ingesting (the store holds the live demo's event log: shown as it is)."""
    recorded = store.event_log_writer()
    if recorded is None or recorded.topic is None:
        return None
    found = content(store, ids)
    if found.other_events:
        raise _refusal(dsn, recorded, found.other_events, "embedded")
    missing = found.stream_events - found.demo_events
    partial = (
        f" - {missing} of the stream's {found.stream_events} events are not in it yet (the live "
        "demo did not finish; run it again to complete them)"
        if missing
        else ""
    )
    return (
        f"demo: the store {mask(dsn)} holds this demo already, logged by {recorded.describe()}; "
        f"its event log is the worker's, so the embedded run adds nothing and shows it as the "
        f"live pipeline left it{partial}"
    )
