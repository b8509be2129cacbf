"""`tracker ingest`'s handling of its input, in-process through the code the CLI runs, on both
stores: re-ingesting is a no-op, no line stops the run, a BOM is not an error."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from engine import Engine
from schemas.registry import Assessment
from sinks import MemoryStore, Store, StoreError
from sinks.faulty import write_drill
from tests.builders import BOOKS, REGISTRY, calendar
from tests.integration.store_dump import dump
from tracker.ingest import ingest
from tracker.pipeline import Summary


def line(event_id: str, type_: str, at: str, unit: str | None = "gat", **fields: Any) -> bytes:
    body: dict[str, Any] = {"event_id": event_id, "type": type_, "at": at + "+08:00", **fields}
    if unit is not None:
        body["unit"] = unit
    return json.dumps(body, ensure_ascii=False).encode()


# Two assessment years: the tick into 2020 closes 2018, whose records the engine then forgets.
TWO_YEARS = [
    line("v1", "vuln.notice", "2018-03-01T10:00:00", notice_id="V1", system="OA"),
    line("o1", "outreach.notice", "2018-03-02T10:00:00", notice_id="O1", terminals=["a"]),
    b"{not json",
    line("f1", "vuln.feedback", "2018-03-10T10:00:00", notice_id="V1"),
    line("t1", "clock.tick", "2020-06-01T00:00:00", unit=None),
    line("v2", "vuln.notice", "2020-06-02T10:00:00", unit="fz", notice_id="V2", system="OA"),
]


def run(sink: Store, lines: Sequence[bytes | str], *, batch_size: int = 3) -> Summary:
    return ingest(sink, REGISTRY, BOOKS, calendar(), lines, "f.jsonl", batch_size=batch_size)


def test_reingesting_a_complete_file_changes_nothing(sink: Store) -> None:
    assert run(sink, TWO_YEARS).as_dict() == {"accepted": 5, "rejected": 1, "duplicates": 0}
    before = dump(sink)
    again = run(sink, TWO_YEARS)
    # every event is already in the log, though the engine forgot the 2018 ones: duplicates,
    # not "assessment year 2018 is closed" dead letters
    assert again.as_dict() == {"accepted": 0, "rejected": 1, "duplicates": 5}
    assert dump(sink) == before


def test_an_event_repeated_after_its_year_closed_is_a_duplicate(sink: Store) -> None:
    lines = [*TWO_YEARS, TWO_YEARS[0], TWO_YEARS[3]]
    assert run(sink, lines).as_dict() == {"accepted": 5, "rejected": 1, "duplicates": 2}
    assert [d.origin for d in sink.dead_letters()] == ["f.jsonl:3"]


def test_an_event_of_a_closed_year_not_in_the_log_is_still_rejected(sink: Store) -> None:
    late = line("v9", "vuln.notice", "2018-05-01T10:00:00", notice_id="V9", system="OA")
    assert run(sink, [*TWO_YEARS, late]).as_dict() == {
        "accepted": 5,
        "rejected": 2,
        "duplicates": 0,
    }
    assert "closed" in sink.dead_letters()[-1].reason


GOOD = [
    line("v1", "vuln.notice", "2018-03-01T10:00:00", notice_id="V1", system="OA"),
    line("v2", "vuln.notice", "2018-03-02T10:00:00", unit="fz", notice_id="V2", system="OA"),
    line("t1", "clock.tick", "2018-04-01T00:00:00", unit=None),
]
NOT_UTF8 = b'{"event_id": "x\xff\xfe", "type": "clock.tick"}'


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        # invalid UTF-8: kept as base64 of its bytes, the reason says so
        (NOT_UTF8, "not UTF-8"),
        # a lone UTF-8 continuation byte, then valid text
        (b"\x80" + GOOD[0], "not UTF-8"),
        # year 1: out of the range any instant computation can handle
        (line("y1", "vuln.notice", "0001-01-01T00:00:00", notice_id="Y", system="s"), ""),
        # year 9999 at the last offset: its Shanghai time is past datetime's range
        (
            b'{"event_id": "y2", "type": "clock.tick", "at": "9999-12-31T23:59:59-12:00"}',
            "",
        ),
        # a due at the end of time
        (
            line("y3", "vuln.notice", "2018-03-01T10:00:00", notice_id="Y3", system="s")[:-1]
            + b', "due": "9999-12-31T23:59:59-12:00"}',
            "",
        ),
    ],
)
def test_a_line_that_cannot_be_applied_is_a_dead_letter_and_the_run_goes_on(
    sink: Store, bad: bytes, reason: str
) -> None:
    lines = [GOOD[0], bad, *GOOD[1:]]
    assert run(sink, lines).as_dict() == {"accepted": 3, "rejected": 1, "duplicates": 0}
    (letter,) = sink.dead_letters()
    assert letter.origin == "f.jsonl:2" and reason in letter.reason
    if reason == "not UTF-8":
        assert base64.b64decode(letter.raw) == bad
    reference = MemoryStore()
    run(reference, [GOOD[0], *GOOD[1:]])
    assert sink.ledger() == reference.ledger() and sink.deadlines() == reference.deadlines()


def test_an_engine_failure_half_way_through_an_event_leaves_no_trace(
    sink: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event the engine raises on after changing some of its state: the tracker drops that
    state (rebuilds the engine from the log) instead of carrying half an event forward."""
    apply = Engine.apply

    def half_apply(self: Engine, event: Any, **kw: Any) -> Any:
        outcome = apply(self, event, **kw)
        if event.event_id == "boom" and kw.get("now") is not None:
            raise RuntimeError("engine bug")
        return outcome

    monkeypatch.setattr(Engine, "apply", half_apply)
    boom = line("boom", "vuln.notice", "2018-03-01T12:00:00", notice_id="B", system="s")
    summary = run(sink, [GOOD[0], boom, *GOOD[1:]], batch_size=100)
    assert summary.as_dict() == {"accepted": 3, "rejected": 1, "duplicates": 0}
    (letter,) = sink.dead_letters()
    assert letter.origin == "f.jsonl:2" and "RuntimeError: engine bug" in letter.reason
    reference = MemoryStore()
    run(reference, [GOOD[0], *GOOD[1:]])
    assert sink.ledger() == reference.ledger() and sink.deadlines() == reference.deadlines()
    assert [e.event_id for e in sink.logged_events()] == ["v1", "v2", "t1"]


@pytest.mark.parametrize(
    "lines",
    [
        [b"\xef\xbb\xbf" + GOOD[0], *GOOD[1:]],  # bytes, as the CLI reads files
        ["\ufeff" + GOOD[0].decode(), *(g.decode() for g in GOOD[1:])],  # text
    ],
)
def test_a_byte_order_mark_on_the_first_line_is_stripped(
    sink: Store, lines: list[bytes | str]
) -> None:
    assert run(sink, lines).as_dict() == {"accepted": 3, "rejected": 0, "duplicates": 0}


def test_a_run_stopped_half_way_is_finished_with_the_registry_it_began_with(
    new_store: Callable[[], Store],
) -> None:
    """The next run brings a registry that adds the 2018 county assessment: the events of the
    stopped run still get exactly the outputs the old registry gave them."""
    county = REGISTRY.model_copy(
        update={
            "assessments": (
                *REGISTRY.assessments,
                Assessment(year=2018, tier="county-gov", rulebook="t-city-county"),
            )
        }
    )
    books = {
        **BOOKS,
        "t-city-county": BOOKS["t-city"].model_copy(
            update={"id": "t-city-county", "tier": "county-gov"}
        ),
    }
    lines = [
        line("v1", "vuln.notice", "2018-03-01T10:00:00", unit="fz.gl", notice_id="V1", system="OA")
    ]
    reference = MemoryStore()
    run(reference, lines)
    store = new_store()
    with write_drill("error", 1, table="ledger"), pytest.raises(StoreError):
        run(store, lines)
    assert store.ledger() == []
    ingest(store, county, books, calendar(), [], "next.jsonl")
    assert store.ledger() == reference.ledger()
    assert store.deadlines() == reference.deadlines()


@pytest.mark.parametrize(
    "data",
    [
        b"\n".join(GOOD),  # LF
        b"\r\n".join(GOOD),  # CR LF
        b"\r".join(GOOD),  # a lone CR ends a line too, as when the file is read as text
    ],
)
def test_line_ends(sink: Store, data: bytes) -> None:
    assert run(sink, io.BytesIO(data + b"\r\n")).as_dict() == {
        "accepted": 3,
        "rejected": 0,
        "duplicates": 0,
    }


@pytest.mark.parametrize(
    ("reuse", "batch_size", "duplicate"),
    [
        # a tick reusing an event's id (the engine remembers no tick ids): found by Hypothesis
        (line("v1", "clock.tick", "2020-07-01T00:00:00", unit=None), 3, True),
        # the same, while v1 is still in the unwritten batch
        (line("v1", "clock.tick", "2020-07-01T00:00:00", unit=None), 100, True),
        # a new event of an open year reusing the id of an event of the closed year 2018
        (line("v1", "extranet.notice", "2020-07-01T10:00:00", notice_id="X9"), 3, True),
        # a year-1 line reusing a logged id (found by Hypothesis when year 1 crashed the engine):
        # since contract v2's bounds it is no event at all, so a dead letter, and the log keeps v1
        (line("v1", "vuln.feedback", "0001-01-01T00:00:00", notice_id="V1"), 3, False),
        # a second tick with the id of an earlier tick
        (line("t1", "clock.tick", "2020-07-01T00:00:00", unit=None), 3, True),
    ],
)
def test_an_event_id_already_logged_is_a_duplicate_whatever_the_event(
    sink: Store, reuse: bytes, batch_size: int, duplicate: bool
) -> None:
    assert run(sink, [*TWO_YEARS, reuse], batch_size=batch_size).as_dict() == {
        "accepted": 5,
        "rejected": 1 + (not duplicate),
        "duplicates": int(duplicate),
    }
    logged = {e.event_id: e.raw for e in sink.logged_events()}
    assert logged == {
        json.loads(raw)["event_id"]: raw.decode() for raw in TWO_YEARS if raw.startswith(b'{"')
    }
