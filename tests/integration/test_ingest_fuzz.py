"""Random bytes and random JSON lines through `tracker ingest`: it never stops, accounts for every
non-blank line as accepted, duplicate or dead letter, and never loses what it accepted before.

In-process through the function the CLI runs (on the memory store, and on chDB for fewer
examples), and as the CLI itself in a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine
from schemas.events import Event, EventError, parse_event
from schemas.ledger import DeadlineState, LedgerEntry
from sinks import MemoryStore, Store
from tests.builders import BOOKS, REGISTRY, calendar
from tracker.ingest import ingest
from tracker.pipeline import Summary

EVENT_IDS = [f"e{i}" for i in range(12)]
UNITS = [u.id for u in REGISTRY.units]
ZONES = [timezone(timedelta(hours=h)) for h in (8, 0, -12, 14)]

instants = st.one_of(
    st.datetimes(
        min_value=datetime(2017, 12, 1),
        max_value=datetime(2021, 1, 31),
        timezones=st.sampled_from(ZONES),
    ).map(lambda t: t.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+08:00",  # the first instant: out of range in Shanghai
            "9999-12-31T23:59:59-12:00",  # the last one: out of range in Shanghai
            "2018-03-01T10:00:00",  # naive
            "2018-02-30T10:00:00+08:00",  # no such day
            "",
        ]
    ),
)
FIELDS: dict[str, Any] = {
    "vuln.notice": {"notice_id": st.sampled_from(["N1", "N2", "N3"]), "system": st.just("OA")},
    "vuln.feedback": {"notice_id": st.sampled_from(["N1", "N2", "N3"])},
    "outreach.notice": {
        "notice_id": st.sampled_from(["O1", "O2"]),
        "terminals": st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=3),  # [] is invalid
    },
    "terminal.finding": {
        "terminal": st.sampled_from(["t1", "t2"]),
        "finding": st.sampled_from(["antivirus_missing", "unregistered", "other"]),
    },
    "extranet.notice": {"notice_id": st.sampled_from(["X1", "X2"])},
    "crypto.notice": {"notice_id": st.sampled_from(["C1"]), "system": st.just("OA")},
    "incident.report": {"incident_id": st.sampled_from(["I1", "I2"])},
    "mlps.finding": {"system": st.sampled_from(["OA", "门户"])},
    "control.finding": {"control": st.just("internet_terminal_realname")},
    "supervision.warning": {"signal_id": st.sampled_from(["S1", "S2"])},
    "supervision.handled": {"signal_id": st.sampled_from(["S1", "S2"])},
    "event.retracted": {"target_event_id": st.sampled_from(EVENT_IDS), "reason": st.just("x")},
    "clock.tick": {},
}
OPTIONAL: dict[str, Any] = {
    "due": instants,
    "cause": st.sampled_from(["violation", "registrar_missing", "nonsense"]),
    "points": st.just("-5"),  # an amount can never come from an event
}


@st.composite
def json_events(draw: st.DrawFn) -> bytes:
    type_ = draw(st.sampled_from([*FIELDS, *FIELDS, "vuln.praise"]))
    body: dict[str, Any] = {
        "event_id": draw(
            st.one_of(st.sampled_from(EVENT_IDS), st.text(max_size=3), st.sampled_from(EVENT_IDS))
        ),
        "type": type_,
        "at": draw(instants),
    }
    if type_ != "clock.tick":
        body["unit"] = draw(st.sampled_from([*UNITS, "ghost"]))
    body.update(draw(st.fixed_dictionaries(FIELDS.get(type_, {}))))
    if draw(st.integers(0, 9)) == 0:
        body.update(draw(st.fixed_dictionaries({}, optional=OPTIONAL)))
    if draw(st.integers(0, 9)) == 0 and len(body) > 1:
        body.pop(draw(st.sampled_from(sorted(body))))
    return json.dumps(body, ensure_ascii=draw(st.booleans())).encode()


lines = st.one_of(
    json_events(),
    json_events(),
    json_events(),  # mostly events, many of them valid
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"", b"  \t", b"\r", b"{", b"null", b"[]", b'"x"', b"\xef\xbb\xbf"]),
)


@st.composite
def files(draw: st.DrawFn) -> bytes:
    body = b"\n".join(draw(st.lists(lines, max_size=25)))
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + body + (b"\n" if draw(st.booleans()) else b"")


def non_blank(data: bytes) -> list[tuple[int, bytes]]:
    """Numbered lines as a text file has them (ended by LF, CR LF or CR), without the blank ones
    (spec section 2; a BOM on the first line is not content)."""
    kept = []
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            kept.append((number, raw))
            continue
        if (text.removeprefix("\ufeff") if number == 1 else text).strip():
            kept.append((number, raw))
    return kept


def _id_and_type(raw: bytes) -> tuple[object, object]:
    try:
        body = json.loads(raw.removeprefix(b"\xef\xbb\xbf"))
    except ValueError:
        return None, None
    return (body.get("event_id"), body.get("type")) if isinstance(body, dict) else (None, None)


def _valid(raw: bytes, *, first: bool) -> Event | None:
    try:
        return parse_event(raw.removeprefix(b"\xef\xbb\xbf") if first else raw)
    except (EventError, ValueError):
        return None


def snapshot(store: Store) -> dict[str, Any]:
    return {
        "events": {e.event_id: e for e in store.logged_events()},
        "ledger": {e.entry_id: e for e in store.ledger()},
        "deadlines": {(d.unit, d.kind, d.ref): d for d in store.deadlines()},
        "letters": {d.letter_id: d for d in store.dead_letters()},
    }


def run_and_check(store: Store, data: bytes, name: str) -> Summary:
    before = snapshot(store)
    summary = ingest(store, REGISTRY, BOOKS, calendar(), io.BytesIO(data), name, batch_size=4)
    after = snapshot(store)
    counts = summary.as_dict()
    lines = non_blank(data)
    assert sum(counts.values()) == len(lines), counts
    assert len(after["events"]) - len(before["events"]) == summary.accepted
    # each line is in the log (accepted now or before), a tick that did not move the clock, or
    # a dead letter naming its line
    origins = {d.origin for d in after["letters"].values()}
    for number, raw in lines:
        event_id, type_ = _id_and_type(raw)
        assert (
            f"{name}:{number}" in origins or event_id in after["events"] or type_ == "clock.tick"
        ), (number, raw)
    new_letters = [d for k, d in after["letters"].items() if k not in before["letters"]]
    # an event already in the log is a duplicate before any other check (issue 7)
    new_origins = {d.origin for d in new_letters}
    for number, raw in lines:
        event = _valid(raw, first=number == 1)
        if event is not None and event.event_id in before["events"]:
            assert f"{name}:{number}" not in new_origins, (number, raw)
    if not any(d.origin.startswith(f"{name}:") for d in before["letters"].values()):
        assert len(new_letters) == summary.rejected  # (a re-ingested bad line has its letter)
    # nothing stored before is lost or changed (deadlines only move to later versions)
    for table in ("events", "ledger", "letters"):
        assert all(after[table].get(k) == v for k, v in before[table].items()), table
    for key, state in before["deadlines"].items():
        assert after["deadlines"][key].version >= state.version
    return summary


def assert_replayable(store: Store) -> None:
    """The stored outputs are what replaying the stored log gives (spec 5.13): nothing the log
    lost or the outputs missed. Instants are compared to the millisecond, the precision of the
    ClickHouse store's DateTime64(3) columns."""
    engine = Engine(REGISTRY, BOOKS, calendar())
    entries, deadlines = {}, {}
    for logged in store.logged_events():
        outcome = engine.apply(parse_event(logged.raw))
        assert outcome.status == "accepted", (logged, outcome)
        entries.update((e.entry_id, _ms(e)) for e in outcome.entries)
        deadlines.update(((d.unit, d.kind, d.ref), _ms(d)) for d in outcome.deadlines)
    assert {e.entry_id: _ms(e) for e in store.ledger()} == entries
    assert {(d.unit, d.kind, d.ref): _ms(d) for d in store.deadlines()} == deadlines


def _ms(model: LedgerEntry | DeadlineState) -> dict[str, Any]:
    return {
        k: v.replace(microsecond=v.microsecond // 1000 * 1000) if isinstance(v, datetime) else v
        for k, v in model.model_dump().items()
    }


@settings(max_examples=150, deadline=None)
@given(first=files(), second=files())
def test_random_input_on_the_memory_store(first: bytes, second: bytes) -> None:
    store = MemoryStore()
    run_and_check(store, first, "a.jsonl")
    run_and_check(store, second, "b.jsonl")
    run_and_check(store, first, "a.jsonl")  # a file ingested before
    assert_replayable(store)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=files(), second=files())
def test_random_input_on_chdb(chdb_path: Path, first: bytes, second: bytes) -> None:
    from sinks.clickhouse import ClickHouseStore

    store = ClickHouseStore(f"chdb://{chdb_path}?database=f_{uuid.uuid4().hex[:12]}")
    try:
        run_and_check(store, first, "a.jsonl")
        run_and_check(store, second, "b.jsonl")
        run_and_check(store, first, "a.jsonl")
        assert_replayable(store)
    finally:
        store.client.command(f"DROP DATABASE IF EXISTS {store.db}")
        store.close()


UNITS_YAML = """
assessments:
  - {year: 2018, tier: provincial-dept, rulebook: fj-2018-provincial-dept}
units:
  - {id: gat, name: 公安厅, tier: provincial-dept}
  - {id: fz, name: 福州市, tier: city-gov}
"""


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=files())
def test_random_input_through_the_cli(tmp_path_factory: Any, data: bytes) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "units.yaml").write_text(UNITS_YAML, encoding="utf-8")
    (folder / "in.jsonl").write_bytes(data)
    env = {**os.environ, "TRACKER_STORE": "", "TRACKER_DATA": str(folder / "data")}
    env.pop("TRACKER_WRITE_FAULT", None)
    for source in ("file", "stdin"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tracker.cli",
                "ingest",
                "--units",
                str(folder / "units.yaml"),
                "--json",
                str(folder / "in.jsonl") if source == "file" else "-",
            ],
            input=data if source == "stdin" else None,
            capture_output=True,
            env=env,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr.decode()
        summary = json.loads(result.stdout.decode().splitlines()[-1])
        assert sum(summary.values()) == len(non_blank(data))
