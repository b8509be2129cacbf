"""`tracker ingest` killed (SIGKILL) or failed by the store at each of its store writes in turn:
the next run - with the same file, or with an empty one - leaves the store as if nothing happened.

Each case runs real processes on a real embedded chDB store; the write drill
(`TRACKER_WRITE_FAULT=kill:N`, sinks/faulty.py) makes the child kill itself just before its Nth
insert, whichever table that is, so every gap between two writes is hit once.

The stream is written in two batches (BATCH): the store's open (its meta rows and the config
tables), the first batch (dead letters, events, unit-years, ledger, points, seen, deadline
history, deadlines, chain heads, batches), the second (the same tables after a committed batch)
and the checkpoint. So every kind of gap between two writes is hit: inside the open, open ->
batch, inside a batch with and without a batch committed before it, batch -> batch and batch ->
checkpoint. A third batch would only repeat the second's gaps (31 writes instead of 40).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from config.holidays import official_calendar
from config.registry import load_registry
from config.rulebooks import load_rulebooks
from sinks import MemoryStore
from tests.integration.kill_drill import MARK as KILL_MARK
from tests.integration.store_dump import MARK, dump, lines_covered
from tracker.ingest import ingest

UNITS = """
assessments:
  - {year: 2018, tier: provincial-dept, rulebook: fj-2018-provincial-dept}
  - {year: 2018, tier: city-gov, rulebook: fj-2018-city-gov}
units:
  - {id: fj.gat, name: 福建省公安厅, tier: provincial-dept}
  - {id: fj.fz, name: 福州市人民政府, tier: city-gov}
  - {id: fj.fz.gl, name: 鼓楼区人民政府, tier: county-gov, parent: fj.fz}
"""


def _ev(event_id: str, type_: str, at: str, unit: str | None = "fj.gat", **extra: Any) -> str:
    body = {"event_id": event_id, "type": type_, "at": f"2018-{at}:00+08:00", **extra}
    if unit:
        body["unit"] = unit
    return json.dumps(body, ensure_ascii=False)


# Deductions, deadlines that expire, a late feedback reversing an overdue, a retraction, bad lines.
LINES = [
    _ev("e1", "vuln.notice", "03-01T10:00", notice_id="V-1", system="OA"),
    _ev("e2", "outreach.notice", "03-02T10:00", notice_id="O-1", terminals=["T1", "T2"]),
    "{not json",
    _ev("e3", "vuln.notice", "03-03T09:00", unit="fj.fz.gl", notice_id="V-2", system="门户网站"),
    _ev("t1", "clock.tick", "03-20T00:00", unit=None),
    _ev("e4", "vuln.feedback", "03-10T10:00", notice_id="V-1"),
    '{"event_id": "b1", "type": "vuln.notice", "unit": "fj.gat", "at": "2018-03-01T10:00:00"}',
    _ev("e5", "extranet.notice", "04-01T10:00", notice_id="X-1"),
    _ev("e6", "terminal.finding", "04-02T10:00", terminal="T9", finding="unregistered"),
    _ev("e7", "event.retracted", "04-03T10:00", target_event_id="e5", reason="posted in error"),
    _ev("e8", "vuln.notice", "04-05T10:00", unit="fj.fz", notice_id="V-3", system="OA"),
    _ev("t2", "clock.tick", "05-01T00:00", unit=None),
    _ev("e9", "vuln.feedback", "05-02T10:00", unit="fj.fz", notice_id="V-3"),
]
BATCH = 20  # records per store write: two batches (module docstring), 31 store writes


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("crash")
    units, stream, empty = folder / "units.yaml", folder / "events.jsonl", folder / "empty.jsonl"
    units.write_text(UNITS, encoding="utf-8")
    stream.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    empty.write_bytes(b"")
    return units, stream, empty


@cache
def expected(upto: int) -> dict[str, Any]:
    """The store after an uninterrupted ingest of the first `upto` lines (in-process)."""
    registry = load_registry(_units_path)
    sink = MemoryStore()
    data = [line.encode() for line in LINES[:upto]]  # as the CLI reads a file
    ingest(
        sink,
        registry,
        dict(load_rulebooks()),
        official_calendar(),
        data,
        "events.jsonl",
        batch_size=BATCH,
    )
    return dump(sink)


_units_path = Path()


def _ingest_args(units: Path, store: Path, file: Path) -> list[str]:
    return [
        "ingest",
        "--units",
        str(units),
        "--store",
        f"chdb://{store}",
        "--batch-size",
        str(BATCH),
        "--json",
        str(file),
    ]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_WRITE_FAULT"}
    return {**env, "TRACKER_STORE": "", **extra}


def _marked(module: str, mark: str, *args: str) -> list[Any]:
    """Run `python -m module args` in a fresh process; what it printed on its lines starting with
    `mark`, each a JSON value, in order."""
    child = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=900,
    )
    assert child.returncode == 0, child.stderr
    return [
        json.loads(line.removeprefix(mark))
        for line in child.stdout.splitlines()
        if line.startswith(mark)
    ]


def _rerun(jobs: list[tuple[Path, list[list[str]]]]) -> list[list[dict[str, Any]]]:
    """Each job's runs of `tracker` on its store, in one fresh process, with the store dumped
    after each run: per job, the dumps in order."""
    payload = [[f"chdb://{store}", *runs] for store, runs in jobs]
    dumps: list[list[dict[str, Any]]] = [[] for _ in jobs]
    for got in _marked("tests.integration.store_dump", MARK, json.dumps(payload)):
        dumps[got["job"]].append(got)
    return dumps


def _kill_at_each_write(prefix: Path, args: list[str]) -> list[tuple[int, int, str]]:
    """`tracker args` killed at its write 1, 2, ... until a run ends on its own, each on the store
    `prefix`-N: per run, N, its exit status (-9: killed) and its stderr."""
    runs = _marked("tests.integration.kill_drill", KILL_MARK, str(prefix), json.dumps(args))
    return [(r["at"], r["status"], r["stderr"]) for r in runs]


def _same_outputs(got: dict[str, Any], want: dict[str, Any]) -> bool:
    keys = ("events", "ledger", "deadlines", "status")
    return all(got[k] == want[k] for k in keys)


def test_kill_9_at_every_store_write(tmp_path: Path, files: tuple[Path, Path, Path]) -> None:
    global _units_path
    units, stream, empty = files
    _units_path = units
    full = expected(len(LINES))
    # Each crash is a process of its own, forked by tests/integration/kill_drill.py after it
    # imported the CLI; the re-runs after all of them run in one process, a store after another
    # (tests/integration/store_dump.py). Both spare a process start per run.
    jobs: list[tuple[Path, list[list[str]]]] = []
    killed = _kill_at_each_write(tmp_path / "kill", _ingest_args(units, Path("{store}"), stream))
    *crashes, (n, last_status, last_stderr) = killed
    assert last_status == 0, f"the last drilled run should end on its own: {last_stderr}"
    for k, status, stderr in crashes:
        assert status == -signal.SIGKILL, f"write {k}: {stderr}"
        store = tmp_path / f"kill-{k}"
        copy = tmp_path / f"kill-{k}-copy"
        shutil.copytree(store, copy, symlinks=True)  # chDB links tables relatively
        jobs.append((store, [_ingest_args(units, store, stream)]))
        jobs.append((copy, [_ingest_args(units, copy, empty), _ingest_args(units, copy, stream)]))
    assert n > 30, "the stream should take some thirty store writes"
    last = tmp_path / f"kill-{n}"
    jobs.append((last, [_ingest_args(units, last, empty)]))
    *reruns, (clean,) = _rerun(jobs)

    failures: list[str] = []
    for k in range(1, n):
        (same,), (after_empty, then_same) = reruns[2 * k - 2], reruns[2 * k - 1]
        if same["code"] != 0 or not _same_outputs(same["dump"], full):
            failures.append(f"write {k}: re-run with the same file differs")
        elif same["dump"]["letters"] != full["letters"]:
            failures.append(f"write {k}: re-run with the same file: dead letters differ")

        got = after_empty["dump"]
        want = expected(lines_covered(got, LINES))
        letters = {tuple(x) for x in got["letters"]}
        if after_empty["code"] != 0 or not _same_outputs(got, want):
            failures.append(f"write {k}: re-run with an empty file differs")
        elif (
            not {tuple(x) for x in want["letters"]}
            <= letters
            <= {tuple(x) for x in full["letters"]}
        ):
            failures.append(f"write {k}: re-run with an empty file: dead letters differ")
        if then_same["code"] != 0 or then_same["dump"] != full:
            failures.append(f"write {k}: the same file after the empty re-run differs")
    assert clean["dump"] == full  # the uninterrupted run matches the in-process expectation
    assert failures == [], f"{len(failures)} of {2 * (n - 1)} re-runs differ"
