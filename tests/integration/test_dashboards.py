"""Every panel query of every shipped dashboard, expanded as Grafana and the ClickHouse plugin do,
run on the real chDB engine over an ingested demo stream; plus the dashboards' JSON contract.

The panel SQL reads `${database}.<table>`; the hidden constant variable `database` is pinned to
the test's own database, exactly as an operator would repoint the dashboards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sinks.clickhouse import ClickHouseStore
from sinks.dashboard_views import statements as dashboard_view_statements
from tests.grafana_emulator import (
    ALL,
    TimeRange,
    expand,
    referenced_fields,
    resolve_variables,
)
from tracker import dashboard_json

pytestmark = pytest.mark.integration

DASHBOARDS = dashboard_json.load()
# Panels that must show rows over the demo stream (by dashboard uid): the rest may be empty
# (e.g. nothing is open any more once the demo's final tick has resolved every deadline).
MUST_HAVE_ROWS = {
    "tracker-province": {1, 2, 4, 5, 6, 7, 9, 10},
    "tracker-unit": {1, 2, 5, 8},
    "tracker-audit": {1, 2, 3, 4, 5, 6},
}


# -- the store --------------------------------------------------------------------------------


def _demo_lines() -> tuple[Any, Any, list[str]]:
    """The seeded demo stream when its generator and registry exist, else a small local stream."""
    from config.registry import DEMO_REGISTRY, load_registry
    from config.rulebooks import load_rulebooks

    try:
        from tracker import demo

        registry = load_registry(DEMO_REGISTRY)
        events = demo.generate(registry, seed=11, years=(2018, 2020), scale=0.1)
        lines = list(demo.lines(events, bad=demo.bad_lines(11)))
        return registry, dict(load_rulebooks()), lines
    except (ImportError, OSError, ValueError):
        from tests.builders import BOOKS, REGISTRY

        return REGISTRY, BOOKS, _local_lines()


def _local_lines() -> list[str]:
    def e(**body: Any) -> str:
        return json.dumps(body, ensure_ascii=False)

    at = "2018-03-{:02d}T10:00:00+08:00".format
    lines = [
        e(event_id="v1", type="vuln.notice", unit="gat", at=at(1), notice_id="V1", system="OA"),
        e(event_id="v2", type="vuln.notice", unit="fz.gl", at=at(2), notice_id="V2", system="网站"),
        e(
            event_id="o1",
            type="outreach.notice",
            unit="gat",
            at=at(3),
            notice_id="O1",
            terminals=["a", "b"],
        ),
        e(event_id="x1", type="extranet.notice", unit="gat", at=at(4), notice_id="X1"),
        e(event_id="x2", type="extranet.notice", unit="gat", at=at(5), notice_id="X2"),
        e(event_id="x3", type="extranet.notice", unit="gat", at=at(6), notice_id="X3"),
        e(
            event_id="r1",
            type="event.retracted",
            unit="gat",
            at=at(7),
            target_event_id="o1",
            reason="posted in error",
        ),
        e(event_id="f1", type="vuln.feedback", unit="gat", at=at(10), notice_id="V1"),
        e(event_id="t1", type="clock.tick", at="2018-04-30T00:00:00+08:00"),
    ]
    return [*lines, "{not json", e(event_id="b1", type="vuln.praise", unit="gat", at=at(8))]


@pytest.fixture
def store(chdb_dsn: str) -> Iterator[ClickHouseStore]:
    from config.holidays import official_calendar
    from tracker.pipeline import Tracker

    registry, books, lines = _demo_lines()
    sink = ClickHouseStore(chdb_dsn)
    for sql in dashboard_view_statements(sink.db):
        sink.client.command(sql)
    sink.save_config(registry, books)
    Tracker(sink, registry, books, official_calendar()).feed_lines(lines, "demo")
    yield sink
    sink.close()


def _rows(sink: ClickHouseStore, sql: str) -> list[Any]:
    return list(sink.client.query(sql).result_rows)


def _range(sink: ClickHouseStore) -> TimeRange:
    """The time picker from the stream's start to now (dead letters carry processing time), with
    Grafana-sized buckets."""
    (first, last), *_ = _rows(sink, f"SELECT min(at), max(at) FROM {sink.db}.events")
    start, end = first - timedelta(days=1), max(last, datetime.now(UTC)) + timedelta(days=1)
    interval = max(timedelta(seconds=1), (end - start) / 500)
    return TimeRange(start, end, timedelta(seconds=int(interval.total_seconds())))


def _busiest(sink: ClickHouseStore) -> tuple[str, int]:
    (unit, year), *_ = _rows(
        sink,
        f"SELECT unit, year FROM {sink.db}.ledger FINAL WHERE reverses IS NULL "
        "GROUP BY unit, year ORDER BY countIf(NOT capped) DESC, count() DESC, unit LIMIT 1",
    )
    return unit, int(year)


def _run_dashboard(
    sink: ClickHouseStore, uid: str, pins: dict[str, str | list[str]]
) -> dict[int, tuple[str, list[str], int]]:
    """Expand and run every target; returns panel id -> (expanded SQL, columns, row count)."""
    dashboard = DASHBOARDS[uid]
    time_range = _range(sink)

    def run_variable_query(sql: str) -> list[str]:
        return [str(r[0]) for r in _rows(sink, sql)]

    variables = resolve_variables(
        dashboard, run_variable_query, time_range, {"database": sink.db, **pins}
    )
    results: dict[int, tuple[str, list[str], int]] = {}
    for panel in dashboard_json.panels(dashboard):
        for target in panel.get("targets", []):
            sql = expand(target["rawSql"], variables, time_range)
            assert "$" not in sql, f"{uid} panel {panel['id']}: unexpanded token in\n{sql}"
            assert "tracker." not in sql, f"{uid} panel {panel['id']}: hard-coded database"
            try:
                result = sink.client.query(sql)
            except Exception as exc:
                pytest.fail(f"{uid} panel {panel['id']} ({panel['title']}) failed: {exc}\n{sql}")
            # chDB returns no header for an empty result, so ask the engine for the shape
            columns = [r[0] for r in _rows(sink, f"DESCRIBE TABLE ({sql})")]
            missing = referenced_fields(panel) - set(columns)
            assert not missing, f"{uid} panel {panel['id']}: fields {missing} not in {columns}"
            results[panel["id"]] = (sql, columns, len(result.result_rows))
    return results


def _assert_rows(uid: str, results: dict[int, tuple[str, list[str], int]]) -> None:
    empty = sorted(pid for pid in MUST_HAVE_ROWS[uid] if results[pid][2] == 0)
    assert not empty, f"{uid}: panels {empty} returned no rows over the demo stream"


# -- every panel runs ------------------------------------------------------------------------


def test_province_overview_panels_run(store: ClickHouseStore) -> None:
    _, year = _busiest(store)
    results = _run_dashboard(store, "tracker-province", {"year": str(year)})
    _assert_rows("tracker-province", results)
    # the ranking is the store's own arithmetic: the top unit lost what its ledger says
    sql, columns, _ = results[5]
    top = dict(zip(columns, _rows(store, sql)[0], strict=True))
    (lost,), *_ = _rows(
        store,
        f"SELECT sum(applied) FROM {store.db}.ledger FINAL "
        f"WHERE unit = '{top['unit']}' AND year = {year}",
    )
    assert top["lost"] == lost


def test_province_overview_with_a_narrowed_selection(store: ClickHouseStore) -> None:
    unit, year = _busiest(store)
    (tier,), *_ = _rows(store, f"SELECT tier FROM {store.db}.units FINAL WHERE id = '{unit}'")
    results = _run_dashboard(
        store, "tracker-province", {"year": str(year), "tier": [tier], "unit": [unit]}
    )
    sql, _, count = results[5]
    assert count == 1 and f"IN ('{unit}')" in sql
    assert {r[0] for r in _rows(store, results[7][0])} <= {unit}


def test_unit_status_panels_run(store: ClickHouseStore) -> None:
    unit, year = _busiest(store)
    results = _run_dashboard(store, "tracker-unit", {"unit": unit, "year": str(year)})
    _assert_rows("tracker-unit", results)
    sql, columns, _ = results[8]
    clauses = [dict(zip(columns, r, strict=True))["clause"] for r in _rows(store, sql)]
    assert all(clauses), "every deduction of the unit shows the clause it cites"
    gauges = _rows(store, results[5][0])
    assert all(0 <= left <= top for _, left, top in gauges)


def test_audit_trail_panels_run(store: ClickHouseStore) -> None:
    results = _run_dashboard(store, "tracker-audit", {})
    _assert_rows("tracker-audit", results)
    # one event id narrows the log and the ledger to that event
    (event_id,), *_ = _rows(
        store, f"SELECT arrayJoin(event_ids) FROM {store.db}.ledger FINAL ORDER BY seq LIMIT 1"
    )
    narrowed = _run_dashboard(store, "tracker-audit", {"event": event_id, "type": [ALL]})
    assert narrowed[1][2] >= 1
    ledger_sql, columns, count = narrowed[2]
    events = [dict(zip(columns, r, strict=True))["events"] for r in _rows(store, ledger_sql)]
    assert count >= 1 and all(event_id in e.split(", ") for e in events)


def test_audit_trail_shows_who_posted_what(store: ClickHouseStore) -> None:
    """The log, the ledger's triggering events and the dead letters name who posted each input
    and when it was received (issue 10): `ingest` posted the demo stream."""
    results = _run_dashboard(store, "tracker-audit", {})
    for panel in (1, 2, 3, 4):
        assert {"posted_by", "received_at"} <= set(results[panel][1]), panel

    def shown(panel: int) -> list[dict[str, Any]]:
        sql, columns, _ = results[panel]
        return [dict(zip(columns, r, strict=True)) for r in _rows(store, sql)]

    log = shown(1)
    assert log and {r["posted_by"] for r in log} == {"ingest:demo"}
    assert all(r["received_at"].year >= 2026 for r in log)  # the ingest's clock, not event time
    ledger = shown(2)
    assert ledger
    for row in ledger:  # one poster and one receipt time per triggering event, in its order
        events = row["events"].split(", ")
        assert row["posted_by"].split(", ") == ["ingest:demo"] * len(events), row
        assert len(row["received_at"].split(", ")) == len(events), row
    letters = shown(4)
    assert letters and {r["posted_by"] for r in letters} == {"ingest:demo"}


def test_the_audit_trail_time_range_end_is_the_as_of_instant(store: ClickHouseStore) -> None:
    """The points and deadlines panels of the audit trail, with the time picker ending at T,
    show what `tracker status --as-of T` shows; the ledger panel, the entries seen by then."""
    from sinks.views import status_rows

    unit, year = _busiest(store)
    config = store.load_config()
    assert config is not None
    (first, last), *_ = _rows(
        store, f"SELECT min(effective_at), max(effective_at) FROM {store.db}.ledger FINAL"
    )
    dashboard = DASHBOARDS["tracker-audit"]
    panels = {p["id"]: p for p in dashboard_json.panels(dashboard)}
    for end in (first + (last - first) / 3, first + (last - first) * 2 / 3):
        end = end.replace(microsecond=0)
        time_range = TimeRange(first - timedelta(days=400), end)
        variables = resolve_variables(
            dashboard,
            lambda sql: [str(r[0]) for r in _rows(store, sql)],
            time_range,
            {"database": store.db, "unit": [unit]},
        )

        def shown(panel: int, variables: Any = variables, when: TimeRange = time_range) -> Any:
            sql = expand(panels[panel]["targets"][0]["rawSql"], variables, when)
            result = store.client.query(sql)
            return [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]

        [status] = status_rows(store, config, unit=unit, year=year, as_of=end)
        points = {
            r["indicator"]: (r["deducted"], r["remaining"]) for r in shown(6) if r["year"] == year
        }
        assert points == {i.id: (i.deducted, i.remaining) for i in status.indicators}, end
        deadlines = {r["ref"]: r["status"] for r in shown(5) if r["noticed_at"].year == year}
        assert deadlines == {d.ref: d.status for d in status.deadlines}, end
        ledger = {r["entry_id"] for r in shown(2)}
        assert ledger and ledger == {e.entry_id for e in store.as_of(end).ledger(unit)}, end


def test_variable_queries_offer_the_store_contents(store: ClickHouseStore) -> None:
    time_range = _range(store)
    variables = resolve_variables(
        DASHBOARDS["tracker-unit"],
        lambda sql: [str(r[0]) for r in _rows(store, sql)],
        time_range,
        {"database": store.db},
    )
    units = {r[0] for r in _rows(store, f"SELECT id FROM {store.db}.units FINAL")}
    assert set(variables["unit"].options) == units and variables["unit"].value in units
    assert variables["tier"].is_all and variables["year"].value == variables["year"].options[0]


# -- the JSON contract ------------------------------------------------------------------------


def _datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            else:
                yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


def test_dashboard_json_contract() -> None:
    assert list(DASHBOARDS) == ["tracker-province", "tracker-unit", "tracker-audit"]
    assert [d["uid"] for d in DASHBOARDS.values()] == list(DASHBOARDS)
    for uid, dashboard in DASHBOARDS.items():
        assert dashboard["schemaVersion"] == dashboard_json.SCHEMA_VERSION, uid
        assert dashboard.get("id") is None, f"{uid}: a saved numeric id breaks provisioning"
        refs = list(_datasource_refs(dashboard))
        assert refs and all(r == dashboard_json.DATASOURCE for r in refs), uid
        ids = [p["id"] for p in dashboard_json.panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{uid}: duplicate panel ids"
        cells: set[tuple[int, int]] = set()
        for panel in dashboard_json.panels(dashboard):
            grid = panel["gridPos"]
            assert {"h", "w", "x", "y"} <= set(grid) and grid["x"] + grid["w"] <= 24, panel["id"]
            area = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not area & cells, f"{uid}: panel {panel['id']} overlaps another"
            cells |= area
            for target in panel["targets"]:
                _check_target_sql(uid, panel, target["rawSql"])
            _check_overrides_survive_renames(uid, panel)
        names = [v["name"] for v in dashboard_json.variables(dashboard)]
        assert names[0] == "database" and "unit" in names


def _check_overrides_survive_renames(uid: str, panel: dict[str, Any]) -> None:
    """Overrides match the display name after transformations: a renamed field loses them."""
    matched = {
        o["matcher"]["options"]
        for o in panel["fieldConfig"]["overrides"]
        if o["matcher"]["id"] == "byName"
    }
    for step in panel.get("transformations", []):
        renamed = set(step.get("options", {}).get("renameByName", {}))
        assert not matched & renamed, (
            f"{uid} panel {panel['id']}: override on renamed {matched & renamed}"
        )


def _check_target_sql(uid: str, panel: dict[str, Any], sql: str) -> None:
    where = f"{uid} panel {panel['id']}"
    assert "${database}." in sql and not re.search(r"\btracker\.", sql), where
    if re.search(r"\$\{database\}\.events\b", sql):
        assert "$__timeFilter(" in sql, f"{where} reads the raw log without a time filter"
    if panel["type"] == "table" and "unit = ${unit:singlequote}" not in sql:
        assert re.search(r"\bLIMIT \d+$", sql), f"{where}: a province-wide list needs a LIMIT"


# -- the plugin's time macros on the engine ----------------------------------------------------


def test_time_macros_select_the_same_rows_on_the_engine(store: ClickHouseStore) -> None:
    """The plugin's filters and the sdk's `$__timeFrom`/`$__timeTo` (string bounds) agree on
    ClickHouse; `$__timeGroup` is SQL Server's datepart(), which ClickHouse refuses."""
    (first, last), *_ = _rows(store, f"SELECT min(at), max(at) FROM {store.db}.events")
    middle = first + (last - first) / 2
    narrowed = TimeRange(
        first.replace(microsecond=0) + timedelta(days=1), middle.replace(microsecond=0)
    )

    def count(where: str) -> int:
        sql = expand(f"SELECT count() FROM {store.db}.events WHERE {where}", {}, narrowed)
        (n,), *_ = _rows(store, sql)
        return int(n)

    inside = count("$__timeFilter(at)")
    assert 0 < inside < count("1")
    assert count("$__timeFilter_ms(at)") == inside
    assert count("$__timeFrom(at) AND $__timeTo(at)") == inside
    assert count("at >= $__fromTime AND at <= $__toTime") == inside
    assert count("$__dateTimeFilter(toDate(at, 'UTC'), at)") == inside
    grouped = expand(f"SELECT $__timeGroup(at, day) FROM {store.db}.events", {}, narrowed)
    with pytest.raises(Exception, match=r"(?i)syntax|unknown"):
        store.client.query(grouped)
