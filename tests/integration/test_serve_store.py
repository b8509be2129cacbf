"""`tracker serve` with the embedded pipeline into a real chDB store (issue 10): replayed requests
are idempotent, refusals lose nothing accepted before them, concurrent posters lose and double
nothing (the store equals `tracker ingest` of the union), a restart continues the store."""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.holidays import official_calendar
from sinks.clickhouse import ClickHouseStore
from tests.integration.store_dump import dump
from tests.serve_kit import BOOKS, REGISTRY, Served, event, jsonl, serve
from tracker.ingest import ingest
from tracker.serve.limits import Limits

pytestmark = pytest.mark.integration

UNITS = ("fj.gat", "fj.fz", "fj.fz.gl", "fj.fz.cl", "fj.xm", "fj.xm.sm")


def stream(n: int, seed: int = 10) -> list[dict[str, Any]]:
    """Notices and findings on a few units, so that caps (the city's jurisdiction, the
    provincial indicators) make the result depend on the order of application."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        unit = rng.choice(UNITS)
        day = 1 + i % 27
        at = f"2018-04-{day:02d}T10:00:00+08:00"
        kind = rng.choice(["vuln.notice", "outreach.notice", "terminal.finding", "mlps.finding"])
        extra: dict[str, Any] = {"at": at}
        if kind == "vuln.notice":
            extra.update(notice_id=f"V-{i}")
        elif kind == "outreach.notice":
            extra.update(notice_id=f"O-{i}", terminals=[f"t{rng.randrange(5)}"])
        elif kind == "terminal.finding":
            extra.update(terminal=f"t{rng.randrange(8)}")
        else:
            extra.update(system=f"s{rng.randrange(4)}")
        out.append(event(kind, unit, f"e-{i}", **extra))
    return out


@pytest.fixture
def store(chdb_dsn: str) -> Iterator[ClickHouseStore]:
    opened = ClickHouseStore(chdb_dsn)
    yield opened
    # Closed, not left to the collector: chDB holds one directory per process, and an open
    # connection to this one kept a later test of this process from opening its own store
    # (test_ingest_checkpoint.py reads the store its CLI wrote). A second close is harmless.
    opened.close()


@pytest.fixture
def served(store: ClickHouseStore, tmp_path: Path) -> Iterator[Served]:
    running = serve(store, tmp_path, Limits(max_body_bytes=64 * 1024, max_events=100, burst=10_000))
    yield running
    running.service.close()  # its applier thread, then the store


def seen(store: ClickHouseStore, served: Served | None = None) -> dict[str, Any]:
    """The store's tables (read directly, not through the API: after the applier applied
    everything `served` answered)."""
    if served is not None:
        served.service.settle()
    state = dump(store)
    del state["letters"]  # their origins name the request lines
    return state


def test_a_replayed_request_changes_nothing(served: Served, store: ClickHouseStore) -> None:
    events = stream(60)
    first = served.post("centre", events)
    assert first.status_code == 200
    assert (first.json()["accepted"], first.json()["duplicates"]) == (60, 0)
    before = seen(store, served)
    again = served.post("centre", events)
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 60)
    assert seen(store, served) == before
    assert len(before["events"]) == 60


def test_refusals_lose_nothing_accepted_before_them(served: Served, store: ClickHouseStore) -> None:
    events = stream(30)
    assert served.post("centre", events[:10]).json()["accepted"] == 10
    kept = seen(store, served)
    # 413: too big; 413: too many; 400: a malformed line after good ones; 403: not its to post
    assert served.post("centre", jsonl(events[10:]) + " " * 70_000).status_code == 413
    assert served.post("centre", events * 4).status_code == 413
    malformed = jsonl(events[10:20]) + "{oops\n" + jsonl(events[20:])
    refused = served.post("centre", malformed)
    assert refused.status_code == 400
    assert [(r["line"], r["reason"][:14]) for r in refused.json()["rejected"]] == [
        (11, "malformed JSON")
    ]
    assert served.post("unit_gat", events[10:]).status_code == 403
    assert seen(store, served) == kept
    # the fixed request: the first ten are duplicates, the rest accepted once
    fixed = served.post("centre", events).json()
    assert (fixed["accepted"], fixed["duplicates"]) == (20, 10)
    assert len(seen(store, served)["events"]) == 30


def test_over_the_rate_is_429_and_the_store_keeps_what_came_before(
    store: ClickHouseStore, tmp_path: Path
) -> None:
    served = serve(store, tmp_path, Limits(rate_per_s=0.01, burst=1))
    events = stream(4)
    assert served.post("centre", events[:2]).json()["accepted"] == 2
    refused = served.post("centre", events[2:])
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert [e["event_id"] for e in seen(store, served)["events"]] == ["e-0", "e-1"]


def test_concurrent_posters_equal_ingest_of_the_union(
    served: Served, store: ClickHouseStore, chdb_path: Path
) -> None:
    events = stream(240)
    rng = random.Random(7)
    # four posters with overlapping batches: every event is posted by one to three of them
    batches: list[list[dict[str, Any]]] = [[] for _ in range(4)]
    for e in events:
        for poster in rng.sample(range(4), rng.randint(1, 3)):
            batches[poster].append(e)
    errors: list[str] = []
    counts = {"accepted": 0, "duplicates": 0}
    start = threading.Barrier(4)

    def post(batch: list[dict[str, Any]]) -> None:
        start.wait()
        for i in range(0, len(batch), 25):
            response = served.post("centre", batch[i : i + 25])
            if response.status_code != 200 or response.json()["rejected"]:
                errors.append(response.text)
            for key in counts:
                counts[key] += response.json()[key]

    threads = [threading.Thread(target=post, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # every event accepted once, in one answer; its other postings answered as duplicates
    posted = sum(len(b) for b in batches)
    assert counts == {"accepted": 240, "duplicates": posted - 240}
    served_state = seen(store, served)
    logged = [e["event_id"] for e in served_state["events"]]
    assert sorted(logged) == sorted(e["event_id"] for e in events)  # nothing lost or doubled
    # `tracker ingest` of the union, in the order the server applied it
    by_id = {e["event_id"]: e for e in events}
    other = ClickHouseStore(f"chdb://{chdb_path}?database=t_{uuid.uuid4().hex[:12]}")
    try:
        lines = [json.dumps(by_id[i]) for i in logged]
        summary = ingest(other, REGISTRY, BOOKS, official_calendar(), lines, "union.jsonl")
        assert summary.as_dict() == {"accepted": 240, "rejected": 0, "duplicates": 0}
        ingested = seen(other)
    finally:
        other.client.command(f"DROP DATABASE IF EXISTS {other.db}")
        other.close()
    for part in ("ledger", "deadlines", "status"):
        assert served_state[part] == ingested[part], part
    assert [e["event_id"] for e in ingested["events"]] == logged
    assert len(served_state["ledger"]) > 100


def test_a_restarted_server_continues_the_store(
    store: ClickHouseStore, chdb_dsn: str, tmp_path: Path
) -> None:
    events = stream(20)
    first = serve(store, tmp_path)
    assert first.post("centre", events[:10]).json()["accepted"] == 10
    first.service.close()
    again = ClickHouseStore(chdb_dsn)
    # closing checkpointed the engine: the next start restores it (docs/ingest.md)
    found = again.load_checkpoint(0)
    assert found is not None and found.through_seq == 10
    try:
        second = serve(again, tmp_path / "2")
        out = second.post("centre", events).json()
        assert (out["accepted"], out["duplicates"]) == (10, 10)
    finally:
        second.service.close()


def test_after_a_restart_a_centre_still_may_not_retract_another_principals_event(
    store: ClickHouseStore, chdb_dsn: str, tmp_path: Path
) -> None:
    first = serve(store, tmp_path)
    notice = event("vuln.notice", "fj.fz.gl", "n-gl", notice_id="V-gl")
    assert first.post("centre", [notice]).json()["accepted"] == 1
    first.service.close()
    again = ClickHouseStore(chdb_dsn)
    try:
        second = serve(again, tmp_path)  # the same principals file: the same principal ids
        retraction = event("event.retracted", "fj.fz.gl", "r-gl", target_event_id="n-gl")
        assert second.post("centre_fz", [retraction]).status_code == 403
    finally:
        second.service.close()


def test_the_log_names_the_principal_that_posted_each_event(
    served: Served, store: ClickHouseStore
) -> None:
    """The embedded intake stamps every accepted event and dead letter with the principal and the
    time of the request (issue 10, item 2): the event log, `posters` and the dead letters."""
    ids = {p.name: p.id for p, _, _ in served.principals.list()}
    before = datetime.now(UTC)
    assert served.post("centre", stream(3)).json()["accepted"] == 3
    feedback = event("vuln.feedback", "fj.gat", "fb-1", notice_id="V-nope")
    assert served.post("unit_gat", [feedback], params={"wait": "applied"}).json()["rejected"]
    after = datetime.now(UTC)
    logged = list(store.logged_events())
    assert {e.posted_by for e in logged} == {ids["centre"]}
    assert all(before - timedelta(seconds=1) <= e.received_at <= after for e in logged)
    assert store.posters([e.event_id for e in logged]) == {
        e.event_id: (e.posted_by, e.received_at) for e in logged
    }
    [letter] = store.dead_letters()
    assert letter.posted_by == ids["unit_gat"]
    # the read API's ledger is `tracker ledger --json`: `posted_by` aligned with `event_ids`
    ledger = served.get("auditor", "/v1/ledger").json()
    assert ledger and all(e["posted_by"] == [ids["centre"]] * len(e["event_ids"]) for e in ledger)
    assert served.get("auditor", "/v1/rejects").json()[0]["posted_by"] == ids["unit_gat"]


def test_a_store_from_before_chains_and_history_is_served_and_as_of_is_a_409(
    store: ClickHouseStore, chdb_dsn: str, tmp_path: Path
) -> None:
    """A store written before issue 11 (no hash columns, no signed heads, no history tables):
    `tracker serve` opens it as any writer does (the columns and tables are added, the old rows
    stay unhashed), answers and takes events as before, and an as-of read - which such a store
    can never answer - is a 409 with the remedy, not a 503 to retry nor a wrong answer."""
    events = stream(20)
    first = serve(store, tmp_path)
    assert first.post("centre", events[:10]).json()["accepted"] == 10
    first.service.close()
    db = store.db
    old = ClickHouseStore(chdb_dsn)
    for sql in (
        f"ALTER TABLE {db}.events DROP COLUMN signature, DROP COLUMN digest, DROP COLUMN chain",
        f"ALTER TABLE {db}.ledger DROP COLUMN digest, DROP COLUMN chain",
        f"DROP TABLE {db}.chain_heads",
        f"DROP TABLE {db}.ledger_seen",
        f"DROP TABLE {db}.deadline_history",
    ):
        old.client.command(sql)
    old.close()
    again = ClickHouseStore(chdb_dsn)
    try:
        assert again.predates_chains()
        second = serve(again, tmp_path / "2")
        mid = "2018-04-15T00:00:00+08:00"
        refused = second.get("centre", "/v1/status", as_of=mid)
        assert refused.status_code == 409, refused.text
        assert "made before --as-of" in refused.json()["detail"]
        assert "new store" in refused.json()["detail"]
        assert second.get("centre", "/v1/ledger", as_of=mid).status_code == 409
        assert second.get("centre", "/v1/status").status_code == 200
        out = second.post("centre", events).json()
        assert (out["accepted"], out["duplicates"]) == (10, 10)
        assert second.get("centre", "/v1/status", as_of=mid).status_code == 409
    finally:
        again.close()
