"""`tracker replay --rulebook ID` end to end on an embedded chDB store made by `tracker ingest` of
the demo stream (issue 11, item 3): one process per command, as a user runs it. The test process
never opens the store itself (chDB: one store path per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_UNITS = ROOT / "config" / "data" / "units-fujian.yaml"
DUMP = """
import json, sys
from sinks.clickhouse import ClickHouseStore
from tests.integration.store_dump import dump
store = ClickHouseStore(sys.argv[1], create=False)
print(json.dumps(dump(store), ensure_ascii=False, sort_keys=True))
store.close()
"""
HOLD = """
import sys, time
from sinks.clickhouse import ClickHouseStore
store = ClickHouseStore(sys.argv[1], create=False)
print("held", flush=True)
time.sleep(600)
"""


def tracker(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRACKER_DATA": str(data), "TRACKER_STORE": ""}
    return subprocess.run(
        [sys.executable, "-m", "tracker.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def store_dump(dsn: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", DUMP, dsn],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The demo stream (2018 and 2020, scale 0.05) ingested into a fresh chDB store."""
    home = tmp_path_factory.mktemp("whatif")
    data = home / "data"
    stream = home / "demo.jsonl"
    dsn = f"chdb://{home / 'store'}"
    made = tracker("generate", "--out", str(stream), "--scale", "0.05", data=data)
    assert made.returncode == 0, made.stderr
    fed = tracker("ingest", "--units", str(DEMO_UNITS), "--store", dsn, "--json", str(stream), data=data)  # fmt: skip
    assert fed.returncode == 0, fed.stderr
    assert json.loads(fed.stdout.splitlines()[-1])["accepted"] > 1000
    return dsn, data


def _provincial_units() -> set[str]:
    from config.registry import load_registry

    return {u.id for u in load_registry(DEMO_UNITS).units if u.tier == "provincial-dept"}


def test_what_if_replay_end_to_end(demo_store: tuple[str, Path]) -> None:
    dsn, data = demo_store
    before = store_dump(dsn)
    ledger_before = tracker("ledger", "--store", dsn, "--json", data=data)
    assert ledger_before.returncode == 0, ledger_before.stderr

    # the rulebook that assessed the store already: the log replays to the live ledger
    same = tracker("replay", "--rulebook", "fj-2018-provincial-dept", "--store", dsn, "--json", data=data)  # fmt: skip
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout) == []

    # the 2017 rules on the 2018 events of the provincial departments: a larger indicator
    # maximum (7, not 3) and real-name control −2 (not −1), so never fewer points
    other = tracker("replay", "--rulebook", "fj-2017-provincial-dept", "--store", dsn, "--json", data=data)  # fmt: skip
    assert other.returncode == 0, other.stderr
    rows = json.loads(other.stdout)
    assert rows, "the demo stream has provincial departments above 3 points in 2018"
    provincial = _provincial_units()
    for row in rows:
        assert set(row) == {"unit", "year", "indicator", "actual", "what_if", "delta"}
        assert row["unit"] in provincial and row["year"] == 2018, row
        actual, what_if, delta = (Decimal(row[k]) for k in ("actual", "what_if", "delta"))
        assert what_if - actual == delta > 0, row
    assert rows == sorted(rows, key=lambda r: (r["unit"], r["year"], r["indicator"]))

    # --unit narrows to that unit; --year to that year
    unit = rows[0]["unit"]
    one = tracker("replay", "--rulebook", "fj-2017-provincial-dept", "--store", dsn, "--unit", unit, "--year", "2018", "--json", data=data)  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout) == [r for r in rows if r["unit"] == unit]

    # the table for people: the same rows, and how many differences there are
    table = tracker("replay", "--rulebook", "fj-2017-provincial-dept", "--store", dsn, data=data)
    assert table.returncode == 0, table.stderr
    assert unit in table.stdout and f"differences: {len(rows)}" in table.stdout

    # the live store is exactly as it was (the ledger byte for byte)
    assert tracker("ledger", "--store", dsn, "--json", data=data).stdout == ledger_before.stdout
    assert store_dump(dsn) == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        # an id nothing has
        (["--rulebook", "fj-2016-provincial-dept"], ["fj-2016-provincial-dept", "--rulebooks"]),
        # a provincial rulebook for a city government
        (
            ["--rulebook", "fj-2017-provincial-dept", "--unit", "fj.fz"],
            ["provincial-dept", "city-gov"],
        ),
    ],
)
def test_errors_are_one_line(demo_store: tuple[str, Path], args: list[str], words: list[str]) -> None:  # fmt: skip
    dsn, data = demo_store
    result = tracker("replay", *args, "--store", dsn, "--json", data=data)
    assert result.returncode == 2 and result.stdout == ""
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err


def test_a_store_held_by_a_worker_is_refused_in_one_line(demo_store: tuple[str, Path]) -> None:
    dsn, data = demo_store
    # what a running worker does to the embedded store: another process has it open
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, dsn],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = tracker("replay", "--rulebook", "fj-2017-provincial-dept", "--store", dsn, data=data)  # fmt: skip
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert result.returncode == 2
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "event log" in err and "worker" in err and "server" in err, err
