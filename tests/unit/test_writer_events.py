"""What `tracker ingest` sends its writer process to make the event log's rows of
(sinks/writer_events.py): the fields come back as they went, and an instant in +08:00 comes back
with engine.clock's very zone object, which the rows' code tells by identity."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone

from engine.clock import SHANGHAI, local
from engine.step import EventFields
from sinks.writer_events import event_columns, fields_of, instants_piece

WEST = timezone(timedelta(hours=-5), "WEST")


def test_instants_come_back_equal_and_shanghai_as_itself() -> None:
    column = [
        datetime(2018, 3, 1, 10, tzinfo=SHANGHAI),  # an event's instant: the engine's zone
        datetime(2026, 11, 29, 4, 5, 6, 789000, tzinfo=UTC),  # a receipt by the wall clock
        datetime(2020, 1, 1, tzinfo=WEST),  # any other zone, as pickle makes it
        datetime(2019, 6, 30, 23, 59, 59, tzinfo=SHANGHAI),
    ]
    back = pickle.loads(instants_piece(column))
    assert back == column
    assert [b.tzinfo is SHANGHAI for b in back] == [True, False, False, True]
    assert back[1].tzinfo is UTC and back[2].tzinfo == WEST
    assert local(back[0]) is back[0]  # no conversion, as in the CLI's own process


def test_the_fields_sent_are_the_fields_received() -> None:
    at = datetime(2018, 3, 1, 10, tzinfo=SHANGHAI)
    fields: list[EventFields] = [
        ("e1", "fj.gat", "vuln.notice", at, '{"a":1}', 1, "ingest:x", at, ""),
        ("t1", "", "clock.tick", at, "{}", 2, "ingest:x", at.astimezone(UTC), "sig"),
    ]
    assert fields_of(pickle.loads(pickle.dumps(event_columns(fields)))) == fields
