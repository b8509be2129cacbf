"""`tracker status` on a ClickHouse store answers in SQL (sinks/clickhouse_status.py) exactly what
the general path (sinks/views.py -> engine/status.py, a model per row) answers: the same objects,
the same `--json` bytes and the same tables, latest and as of any instant; and a bad row of the
store is a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sinks.base import StoreError
from sinks.clickhouse import ClickHouseStore, connect
from sinks.clickhouse_docs import ODD_REF
from sinks.clickhouse_status import StatusQuery
from sinks.views import status_rows
from tests.builders import ev, tick
from tests.integration.test_store_as_of import INSTANTS, MS, STREAM, at, fill
from tracker.cli import main
from tracker.status_cmd import _summary

# the as-of stream (an overdue reversed by a late feedback, a notice with its own due, a
# retraction, a capped item) and: refs json.dumps escapes (a quote, a backslash, a line break,
# a control character) and one it does not (CJK); an instant with milliseconds; a notice whose
# own due equals the judged due; several units and two years (2018, 2020); notices of one unit
# at the same instant (their order: by ref, then kind)
MORE = [
    ev("vuln.notice", "2018-04-02T09:30:00.250", unit="fz", event_id="q1", notice_id='V"q',
       system="OA"),
    ev("vuln.notice", "2018-04-02T09:30:00.250", unit="fz", event_id="q2", notice_id="V\\b",
       system="OA"),
    ev("vuln.notice", "2018-04-02T09:30:00.250", unit="fz", event_id="q3", notice_id="V\nn",
       system="OA"),
    ev("vuln.notice", "2018-04-03T11:00:00.001", unit="fz", event_id="q4", notice_id="V\x07",
       system="OA"),
    ev("vuln.notice", "2018-04-04T11:00", unit="fz", event_id="q5", notice_id="漏洞-甲",
       system="门户", due="2018-04-18T11:00"),
    ev("vuln.notice", "2018-04-05T11:00", unit="nd", event_id="q6", notice_id="N1", system="X"),
    ev("vuln.notice", "2018-04-05T11:00", unit="nd", event_id="q7", notice_id="N0", system="X"),
    tick("2018-06-01T00:00"),
    ev("vuln.notice", "2020-03-01T10:00", unit="nd.gaj", event_id="q8", notice_id="D1",
       system="X"),
    tick("2020-04-01T00:00"),
]  # fmt: skip
PLAIN = [e for e in MORE if e.event_id not in ("q1", "q2", "q3", "q4")]  # no ref to escape
WHEN: list[datetime | None] = [None, *(w for w, _ in INSTANTS), at("2018-04-02T09:30:00.250")]
FILTERS = [(None, None), ("fz", None), ("nd.gaj", 2020), (None, 2018), ("nobody", None)]


def _filled(refs: str, chdb_path: Path) -> Iterator[ClickHouseStore]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    sink = ClickHouseStore(f"chdb://{chdb_path}?database={database}")
    fill(sink, [*STREAM, *(MORE if refs == "escaped refs" else PLAIN)])
    yield sink
    sink.close()
    client = connect(sink.dsn)
    client.command(f"DROP DATABASE IF EXISTS {database}")
    client.close()


# The tests that only read share one store per kind of refs (filling one, and dropping it,
# costs seconds); a test that changes its store gets its own (`own_store`).
@pytest.fixture(scope="module", params=["escaped refs", "plain refs"])
def store(request: pytest.FixtureRequest, chdb_path: Path) -> Iterator[ClickHouseStore]:
    yield from _filled(request.param, chdb_path)


@pytest.fixture(params=["escaped refs", "plain refs"])
def own_store(request: pytest.FixtureRequest, chdb_path: Path) -> Iterator[ClickHouseStore]:
    yield from _filled(request.param, chdb_path)


def general(store: ClickHouseStore, unit: str | None, year: int | None, when: Any) -> list[Any]:
    config = store.load_config()
    assert config is not None
    return [r.model_dump(mode="json") for r in status_rows(store, config, unit, year, as_of=when)]


def test_the_sql_status_is_the_general_one(store: ClickHouseStore) -> None:
    query = StatusQuery(store.dsn)
    try:
        for when in WHEN:
            config = query.config(as_of=when is not None)
            for unit, year in FILTERS:
                want = general(store, unit, year, when)
                assert query.documents(config, unit, year, when) == want, (when, unit, year)
                text = json.dumps(want, ensure_ascii=False)
                assert query.json_text(config, unit, year, when) == text, (when, unit, year)
                # the every-unit table's counts (tracker/status_cmd.py `_summary` on the general path)
                assert query.summaries(config, unit, year, when) == [_summary(d) for d in want], (
                    when,
                    unit,
                    year,
                )
    finally:
        query.close()


def test_the_command_prints_the_same_bytes(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole command, JSON and tables: the SQL path against the general one (forced by
    taking the store for one a worker holds, and reading it directly all the same)."""
    import sinks.dsn
    import sinks.remote

    def printed(held: bool, *args: str) -> str:
        monkeypatch.setattr(sinks.dsn, "held_by_another_process", lambda dsn: held)
        monkeypatch.setattr(sinks.remote, "held_by_another_process", lambda dsn: False)
        assert main(["status", "--store", store.dsn, *args]) == 0
        return capsys.readouterr().out

    for args in (
        [],
        ["--json"],
        ["--unit", "fz"],
        ["--unit", "fz", "--json"],
        ["--as-of", "2018-03-16T00:00:00.001+08:00"],
        ["--as-of", "2018-04-02T09:30:00.250+08:00", "--unit", "fz"],
        ["--as-of", "2018-04-02T09:30:00.250+08:00", "--json", "--year", "2018"],
    ):
        assert printed(False, *args) == printed(True, *args), args


def answers(query: StatusQuery, kept: bool) -> list[tuple[Any, ...]]:
    """Every answer of the SQL path, at every instant and filter: from the kept totals (as a
    writer of this version keeps them) or from the ledger and the event log themselves."""
    out = []
    for when in WHEN:
        config = query.config(as_of=when is not None)
        query.kept = kept and query.kept  # config() says whether the store keeps them
        for unit, year in FILTERS:
            out.append(
                (
                    when,
                    unit,
                    year,
                    query.documents(config, unit, year, when),
                    query.json_text(config, unit, year, when),
                )
            )
    return out


def test_the_kept_totals_answer_as_the_ledger_and_the_log_do(store: ClickHouseStore) -> None:
    """sinks/clickhouse_totals.py: the store's writes kept the totals and unit-years, and they
    give what summing the ledger and grouping the event log give (the general path reads them
    too, through ClickHouseStore.totals and event_unit_years)."""
    query = StatusQuery(store.dsn)
    try:
        query.config(as_of=False)
        assert query.kept
        assert answers(query, kept=True) == answers(query, kept=False)
    finally:
        query.close()


def test_a_store_made_before_kept_totals_is_read_from_the_ledger_then_filled(
    own_store: ClickHouseStore,
) -> None:
    """A store without the kept tables (made before them) is answered from the ledger and the
    event log, by the SQL path and the general one; its next writer fills the tables from them
    and marks the store, and the answers stay the same."""
    db = own_store.db
    want = StatusQuery(own_store.dsn)
    try:
        before = answers(want, kept=True)
    finally:
        want.close()
    for table in ("ledger_points", "unit_years"):
        own_store.client.command(f"DROP TABLE {db}.{table}")
    own_store.client.command(
        f"ALTER TABLE {db}.meta DELETE WHERE key = 'kept_totals' SETTINGS mutations_sync = 2"
    )
    for read_first in (True, False):  # then a writer opens it
        if not read_first:
            ClickHouseStore(own_store.dsn).close()  # fills and marks
        query = StatusQuery(own_store.dsn)
        reader = ClickHouseStore(own_store.dsn, create=False)
        try:
            assert answers(query, kept=True) == before
            assert query.kept is not read_first
            config = query.config(as_of=False)
            # the latest view and two instants (every instant is the first test's, on both paths)
            for when in (WHEN[0], WHEN[len(WHEN) // 2], WHEN[-1]):
                for unit, year in FILTERS:
                    assert query.documents(config, unit, year, when) == general(
                        reader, unit, year, when
                    ), (read_first, when, unit, year)
        finally:
            reader.close()
            query.close()
    tables = {r[0] for r in own_store.client.query(f"SHOW TABLES FROM {db}").result_rows}
    assert {"ledger_points", "unit_years"} <= tables


def test_a_bad_row_is_a_clear_error(chdb_dsn: str) -> None:
    sink = ClickHouseStore(chdb_dsn)
    fill(sink, STREAM)
    query = StatusQuery(chdb_dsn)
    try:
        config = query.config(as_of=False)
        sink.client.command(
            f"INSERT INTO {sink.db}.deadlines SELECT * REPLACE ('lost' AS status, version + 1 AS "
            f"version) FROM {sink.db}.deadlines FINAL LIMIT 1"
        )
        for answer in (query.documents, query.json_text, query.summaries):
            with pytest.raises(StoreError, match="unknown status 'lost'"):
                answer(config, None, None, None)
        sink.client.command(
            f"INSERT INTO {sink.db}.meta VALUES ('registry', '{{\"units\": 3}}', now64(6))"
        )
        with pytest.raises(StoreError, match="recorded registry cannot be read"):
            query.config(as_of=False)
    finally:
        query.close()
        sink.close()


def test_an_as_of_read_of_a_store_without_history_is_refused(chdb_dsn: str) -> None:
    sink = ClickHouseStore(chdb_dsn)
    fill(sink, STREAM)
    sink.client.command(f"DROP TABLE {sink.db}.deadline_history")
    query = StatusQuery(chdb_dsn)
    try:
        config = query.config(as_of=True)
        with pytest.raises(StoreError, match="made before --as-of"):
            query.json_text(config, None, None, at("2018-03-20T00:00") + MS)
        assert query.json_text(config, None, None, None)  # the latest outputs read as before
    finally:
        query.close()
        sink.close()


def test_the_command_imports_neither_the_models_nor_the_engine(tmp_path: Path) -> None:
    """A whole `tracker ingest` process, then a whole `tracker status` process on a chDB store (made by `tracker ingest`, in a
    directory this process never opens): what it imports (tests/unit/test_cli_start.py)."""
    from tests.unit.test_cli_start import NOT_FOR_STATUS

    units = tmp_path / "units.yaml"
    units.write_text(
        "assessments: [{year: 2018, tier: provincial-dept, rulebook: fj-2018-provincial-dept}]\n"
        "units: [{id: gat, name: 公安厅, tier: provincial-dept}]\n",
        encoding="utf-8",
    )
    dsn = f"chdb://{tmp_path / 'store'}"
    lines = [e.model_dump_json(exclude_none=True) for e in STREAM[:1]]
    probe = (
        "import json, sys\n"
        "from tracker.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    ingested = subprocess.run(
        [sys.executable, "-c", probe, "ingest", "--units", str(units), "--store", dsn,
         "--json", "-"],
        input="\n".join(lines) + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    # the driver's insert asks for pandas (a DataFrame check) unless told there is none: 0.5 s
    # or more of every writing process's start (sinks/connection.py `_without_dataframes`)
    loaded = set(json.loads(ingested.stderr.strip().splitlines()[-1]))
    assert sorted(loaded & {"numpy", "pandas"}) == []
    done = subprocess.run(
        [sys.executable, "-c", probe, "status", "--store", dsn, "--json", "--as-of",
         "2018-06-30T00:00:00+08:00"],
        text=True, capture_output=True, check=True,
    )  # fmt: skip
    assert [r["unit"] for r in json.loads(done.stdout)] == ["gat"]
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert sorted(loaded & set(NOT_FOR_STATUS)) == []
    # chDB's Arrow results, which no query here asks for (sinks/connection.py `_without_arrow`)
    assert sorted(loaded & {"pyarrow", "numpy", "pandas"}) == []


def _every_json(query: StatusQuery, store: ClickHouseStore) -> None:
    """The latest `--json` text of every filter is the general path's."""
    config = query.config(as_of=False)
    for unit, year in FILTERS:
        want = json.dumps(general(store, unit, year, None), ensure_ascii=False)
        assert query.json_text(config, unit, year, None) == want, (unit, year)


def _docs(store: ClickHouseStore) -> dict[tuple[str, int], str]:
    rows = store.client.query(f"SELECT unit, year, text FROM {store.db}.deadline_docs FINAL")
    return {(u, y): t for u, y, t in rows.result_rows}


def test_the_kept_deadline_documents_answer_as_the_deadlines_do(
    own_store: ClickHouseStore,
) -> None:
    """sinks/clickhouse_docs.py: a writer keeps each unit-year's deadlines as status writes
    them; a reader uses a document only while it is fresh and of the exact form, and makes the
    others from the deadlines, so the output never changes: stale (written since the last
    refresh), refreshed, one unit-year changed since, a document rewritten by hand."""
    db = own_store.db
    query = StatusQuery(own_store.dsn)
    try:
        _every_json(query, own_store)  # written since the open: every unit-year is stale
        assert query.docs
        own_store.refresh_docs()  # what a checkpoint and the close do
        with_deadlines = {
            (u, y)
            for u, y in own_store.client.query(
                f"SELECT DISTINCT unit, year FROM {db}.deadlines"
            ).result_rows
        }
        kept = _docs(own_store)
        # a unit-year with a ref json.dumps escapes (fz 2018 of the escaped refs) gets none
        odd = {
            (u, y)
            for u, y in own_store.client.query(
                f"SELECT DISTINCT unit, year FROM {db}.deadlines WHERE {ODD_REF}"
            ).result_rows
        }
        assert set(kept) == with_deadlines - odd
        assert kept and (odd == set() or odd == {("fz", 2018)})
        _every_json(query, own_store)
        # one deadline of nd.gaj 2020 changed since the refresh: that unit-year is stale
        own_store.client.command(
            f"INSERT INTO {db}.deadlines SELECT * REPLACE ('withdrawn' AS status, version + 1000 AS "
            f"version) FROM {db}.deadlines FINAL WHERE unit = 'nd.gaj' LIMIT 1"
        )
        _every_json(query, own_store)
        changed = query.json_text(query.config(as_of=False), "nd.gaj", 2020, None)
        assert '"status": "withdrawn"' in changed
        # documents rewritten by hand, at the fresh version: not of the form, so not used; and
        # one of the form with a version no deadline has, so stale
        own_store.refresh_docs()  # (nothing was written through this store: a no-op)
        own_store.client.command(
            f"INSERT INTO {db}.deadline_docs SELECT unit, year, version, "
            '\'{"ref": "x"}], "evil": [{\' FROM '
            f"{db}.deadline_docs FINAL WHERE unit = 'nd'"
        )
        own_store.client.command(
            f"INSERT INTO {db}.deadline_docs SELECT unit, year, version + 7, "
            '\'{"ref": "x", "due": "2018-01-01T00:00:00+08:00", "status": "met"}\' '
            f"FROM {db}.deadline_docs FINAL WHERE unit = 'gat'"
        )
        _every_json(query, own_store)
        assert query.json_text(query.config(as_of=False), None, None, None) == json.dumps(
            general(own_store, None, None, None), ensure_ascii=False
        )
    finally:
        query.close()


def test_a_store_made_before_the_deadline_documents_is_read_then_filled(
    own_store: ClickHouseStore,
) -> None:
    """A store without deadline_docs (made before it): readers make every text from the
    deadlines; the next writer's open makes the table, fills it and marks the store."""
    db = own_store.db
    own_store.client.command(f"DROP TABLE {db}.deadline_docs")
    own_store.client.command(
        f"ALTER TABLE {db}.meta DELETE WHERE key = 'deadline_docs' SETTINGS mutations_sync = 2"
    )
    query = StatusQuery(own_store.dsn)
    try:
        _every_json(query, own_store)
        assert not query.docs
        ClickHouseStore(own_store.dsn).close()  # a writer opens it
        _every_json(query, own_store)
        assert query.docs
        assert _docs(own_store)
    finally:
        query.close()
