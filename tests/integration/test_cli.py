"""`tracker` end to end on the embedded chDB store, as a user runs it (one process per command)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = """
assessments:
  - {year: 2018, tier: provincial-dept, rulebook: fj-2018-provincial-dept}
  - {year: 2018, tier: city-gov, rulebook: fj-2018-city-gov}
units:
  - {id: fj.gat, name: 福建省公安厅, tier: provincial-dept}
  - {id: fj.fz, name: 福州市人民政府, tier: city-gov}
  - {id: fj.fz.gl, name: 鼓楼区人民政府, tier: county-gov, parent: fj.fz}
"""
EVENTS = [
    {
        "event_id": "e1",
        "type": "vuln.notice",
        "unit": "fj.gat",
        "at": "2018-03-01T10:00:00+08:00",
        "notice_id": "V-1",
        "system": "OA",
        "due": "2018-03-10T18:00:00+08:00",  # kept and shown; the clause's 2 weeks judge
    },
    {
        "event_id": "e2",
        "type": "outreach.notice",
        "unit": "fj.gat",
        "at": "2018-03-02T10:00:00+08:00",
        "notice_id": "O-1",
        "terminals": ["T1", "T2", "T1"],
    },
    {
        "event_id": "e3",
        "type": "vuln.notice",
        "unit": "fj.fz.gl",
        "at": "2018-03-03T09:00:00+08:00",
        "notice_id": "V-2",
        "system": "门户网站",
    },
    {
        "event_id": "e4",
        "type": "vuln.feedback",
        "unit": "fj.gat",
        "at": "2018-03-15T10:00:00+08:00",
        "notice_id": "V-1",
    },
    {"event_id": "t1", "type": "clock.tick", "at": "2018-04-01T00:00:00+08:00"},
]
BAD = [
    "{not json",
    '{"event_id": "b1", "type": "vuln.notice", "unit": "fj.gat", "at": "2018-03-01T10:00:00", "notice_id": "X", "system": "s"}',
    '{"event_id": "b2", "type": "vuln.feedback", "unit": "fj.gat", "at": "2018-03-05T10:00:00+08:00", "notice_id": "NOPE"}',
    "",
]


def tracker(*args: str, data: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRACKER_DATA": str(data), "TRACKER_STORE": ""}
    result = subprocess.run(
        [sys.executable, "-m", "tracker.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    units = tmp_path / "units.yaml"
    units.write_text(UNITS, encoding="utf-8")
    stream = tmp_path / "events.jsonl"
    lines = [json.dumps(e, ensure_ascii=False) for e in EVENTS] + BAD
    stream.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return units, stream


def test_ingest_status_and_reingest(tmp_path: Path, files: tuple[Path, Path]) -> None:
    units, stream = files
    data = tmp_path / "data"
    first = tracker("ingest", "--units", str(units), "--json", str(stream), data=data)
    assert json.loads(first.stdout.strip().splitlines()[-1]) == {
        "accepted": 5,
        "rejected": 3,
        "duplicates": 0,
    }

    status = json.loads(tracker("status", "--json", data=data).stdout)
    gat = next(s for s in status if s["unit"] == "fj.gat")
    assert gat == {
        "unit": "fj.gat",
        "year": 2018,
        "rulebook": "fj-2018-provincial-dept",
        "deducted": "2",  # V-1 notice -1, outreach T1 and T2 -0.5 each; on-time feedback: no overdue
        "indicators": gat["indicators"],
        "deadlines": [
            {
                "ref": "V-1",
                "due": "2018-03-16T00:00:00+08:00",  # 24:00 of the 14th day after receipt
                "status": "met",  # feedback on 15 March: late for the notice's own due only
                "notice_due": "2018-03-10T18:00:00+08:00",
            }
        ],
    }
    net = next(i for i in gat["indicators"] if i["id"] == "cii-netsec")
    assert (net["max"], net["deducted"], net["remaining"]) == ("3", "2", "1")
    fz = next(s for s in status if s["unit"] == "fj.fz")
    assert fz["deducted"] == "2"  # the county's notice and its overdue, counted for the city
    county = next(s for s in status if s["unit"] == "fj.fz.gl")
    assert county["rulebook"] is None and county["deducted"] == "0" and county["indicators"] == []
    assert county["deadlines"] == [
        {"ref": "V-2", "due": "2018-03-18T00:00:00+08:00", "status": "overdue"}
    ]

    ledger = tracker("ledger", "--unit", "fj.gat", "--json", data=data).stdout
    again = tracker("ingest", "--units", str(units), "--json", str(stream), data=data)
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {
        "accepted": 0,
        "rejected": 3,
        "duplicates": 5,
    }
    assert json.loads(tracker("status", "--json", data=data).stdout) == status
    assert tracker("ledger", "--unit", "fj.gat", "--json", data=data).stdout == ledger
    rejects = json.loads(tracker("rejects", "--json", data=data).stdout)
    assert sorted(r["reason"].split(":")[0] for r in rejects) == [
        "malformed JSON",
        "schema violation",
        "vuln.feedback for unknown notice 'NOPE' of unit fj.gat",
    ]


def test_ledger_and_rejects_say_who_posted(tmp_path: Path, files: tuple[Path, Path]) -> None:
    """Each ledger entry's events with who posted each (issue 10): `ingest` names itself and its
    file. `--json` adds `posted_by`, aligned with `event_ids`, after the entry's own fields."""
    from schemas.ledger import LedgerEntry

    units, stream = files
    data = tmp_path / "data"
    tracker("ingest", "--units", str(units), str(stream), data=data)
    lines = tracker("ledger", "--json", data=data).stdout.splitlines()
    assert lines
    for line in lines:
        shown = json.loads(line)
        posters = shown.pop("posted_by")
        entry = LedgerEntry.model_validate_json(json.dumps(shown))
        assert posters == ["ingest:events.jsonl"] * len(entry.event_ids), line
        assert line.startswith(entry.model_dump_json()[:-1] + ',"posted_by":['), line
    human = tracker("ledger", "--unit", "fj.gat", data=data).stdout
    assert "posted by" in human.splitlines()[0] and "ingest:events.jsonl" in human
    rejects = json.loads(tracker("rejects", "--json", data=data).stdout)
    assert {r["posted_by"] for r in rejects} == {"ingest:events.jsonl"}
    shown_rejects = tracker("rejects", data=data).stdout
    assert "posted by" in shown_rejects.splitlines()[0]
    assert "ingest:events.jsonl" in shown_rejects


def test_human_views_render(tmp_path: Path, files: tuple[Path, Path]) -> None:
    units, stream = files
    data = tmp_path / "data"
    tracker("ingest", "--units", str(units), str(stream), data=data)
    assert "fj-2018-provincial-dept" in tracker("status", data=data).stdout
    assert "cii-netsec" in tracker("status", "--unit", "fj.gat", "--year", "2018", data=data).stdout
    ledger = tracker("ledger", "--unit", "fj.gat", data=data).stdout
    assert (
        "違規外聯" in ledger
    )  # the clause text of each deduction (seed 000 is in traditional script)
    deadlines = tracker("deadlines", "--all", data=data).stdout
    assert "V-2" in deadlines and "2018-03-10T18:00:00+08:00" in deadlines  # V-1's own due
    assert "naive timestamp" in tracker("rejects", data=data).stdout
    assert "fj-2017-provincial-dept" in tracker("rulebooks", "list", data=data).stdout


@pytest.mark.parametrize(
    ("book", "period"),
    [
        ("fj-2018-city-gov", "2 weeks, counted from the day after receipt"),  # 接到通报2周内
        ("nd-2020-county-gov", "by the notice's due"),  # 未按期完成整改: no period stated
        ("nd-2020-city-dept", "3 working days"),  # 未在3个工作日内
    ],
)
def test_rulebooks_show_prints_each_rules_period(tmp_path: Path, book: str, period: str) -> None:
    shown = tracker("rulebooks", "show", book, data=tmp_path / "data").stdout
    assert period in shown


def test_stdin_input(tmp_path: Path, files: tuple[Path, Path]) -> None:
    units, stream = files
    env = {**os.environ, "TRACKER_DATA": str(tmp_path / "d"), "TRACKER_STORE": ""}
    result = subprocess.run(
        [sys.executable, "-m", "tracker.cli", "ingest", "--units", str(units), "--json", "-"],
        input=stream.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(result.stdout.splitlines()[-1])["accepted"] == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "--units", "missing.yaml", "x.jsonl"], "missing.yaml"),  # no registry file
        (["status", "--store", "ftp://nowhere"], "unsupported store DSN"),  # a DSN we cannot use
        (["status"], "no store at"),  # nothing ingested yet
        (["rulebooks", "show", "nope"], "unknown rulebook"),
    ],
)
def test_errors_are_one_line_without_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = tracker(*args, data=tmp_path / "empty", check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_missing_input_file_is_said_before_any_store_is_made(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    units, _ = files
    data = tmp_path / "data"
    result = tracker(
        "ingest", "--units", str(units), str(tmp_path / "none.jsonl"), data=data, check=False
    )
    assert result.returncode == 2
    assert "none.jsonl" in result.stderr and "Traceback" not in result.stderr
    assert not data.exists() or not any(data.iterdir())  # no store made for it


def test_human_views_escape_control_characters(tmp_path: Path) -> None:
    """Ids, names and raw lines come from outside: a terminal must show them, not obey them."""
    units = tmp_path / "units.yaml"
    units.write_text(
        UNITS.replace("name: 福建省公安厅", 'name: "公安厅\\e]0;owned\\a"'), encoding="utf-8"
    )
    evil = "V-\x1b[31m\x1b[2J\r\u202eX"
    events = [
        {**EVENTS[0], "notice_id": evil},
        {**EVENTS[1], "event_id": "e2\x1b[1A"},
        {"event_id": "t1", "type": "clock.tick", "at": "2018-04-01T00:00:00+08:00"},
    ]
    lines = [json.dumps(e, ensure_ascii=False) for e in events]
    lines.append('{"event_id": "bad\x1b[2J\x07", "broken')  # raw control bytes in a dead letter
    stream = tmp_path / "events.jsonl"
    stream.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = tmp_path / "data"
    tracker("ingest", "--units", str(units), str(stream), data=data)
    views = {
        "status": tracker("status", data=data).stdout,
        "status --unit": tracker("status", "--unit", "fj.gat", data=data).stdout,
        "deadlines": tracker("deadlines", "--all", data=data).stdout,
        "rejects": tracker("rejects", data=data).stdout,
        "ledger": tracker("ledger", data=data).stdout,
    }
    for name, out in views.items():
        unsafe = [ch for ch in out if (ord(ch) < 32 and ch != "\n") or ch in "\x7f\u202e"]
        assert not unsafe, (name, unsafe)
    assert "V-\\x1b[31m\\x1b[2J\\r\\u202eX" in views["deadlines"]
    assert "\\x1b]0;owned\\x07" in views["status"]
    assert "bad\\x1b[2J\\x07" in views["rejects"]
    assert "e2\\x1b[1A" in views["ledger"]
    # JSON output keeps the exact values
    deadlines = json.loads(tracker("deadlines", "--all", "--json", data=data).stdout)
    assert evil in {d["ref"] for d in deadlines}


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("command", ["status", "ledger", "deadlines", "rejects"])
def test_reads_of_a_missing_store_fail_and_create_nothing(tmp_path: Path, command: str) -> None:
    """A read never creates a store: not at a new path, not in an existing folder that holds no
    store (a system folder, say), not as another database next to an existing store."""
    missing = tmp_path / "nowhere" / "chdb"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "keep.txt").write_text("x")
    store = tmp_path / "store"
    units = tmp_path / "units.yaml"
    units.write_text(UNITS, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(EVENTS[0]) + "\n", encoding="utf-8")
    tracker("ingest", "--units", str(units), "--store", f"chdb://{store}", str(events),
            data=tmp_path)  # fmt: skip
    before = _tree(store)
    for dsn, why in [
        (f"chdb://{missing}", "does not exist"),
        (f"chdb://{empty}", "holds no tracker store"),
        (f"chdb://{store}?database=other", "holds no tracker store"),
    ]:
        result = tracker(command, "--store", dsn, data=tmp_path / "data", check=False)
        assert result.returncode == 2, (dsn, result.stdout, result.stderr)
        assert "tracker: error: no store at" in result.stderr and why in result.stderr, dsn
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "nowhere").exists()
    assert _tree(empty) == ["keep.txt"]
    assert _tree(store) == before
    assert not (tmp_path / "data").exists()


def test_an_ingest_refused_says_why_and_its_code_as_its_own_process(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    units, stream = files
    refused = tracker(
        "ingest",
        "--units",
        str(units),
        "--batch-size",
        "0",
        str(stream),
        data=tmp_path,
        check=False,
    )
    assert refused.returncode == 2  # said and flushed although the process skips its teardown
    assert "--batch-size must be at least 1" in refused.stderr


def test_no_line_stops_an_ingest(tmp_path: Path, files: tuple[Path, Path]) -> None:
    """A BOM, a line that is not UTF-8 and an instant out of range: the run goes on, and each bad
    line is a dead letter naming its line, the undecodable one kept as base64 of its bytes."""
    units, _ = files
    good = [json.dumps(e, ensure_ascii=False).encode() for e in EVENTS]
    year_one = good[0].replace(b"2018-03-01", b"0001-01-01").replace(b'"e1"', b'"y1"')
    stream = tmp_path / "mixed.jsonl"
    stream.write_bytes(
        b"\n".join([b"\xef\xbb\xbf" + good[0], b"\xff\xfe not text", year_one, *good[1:]]) + b"\n"
    )
    result = tracker("ingest", "--units", str(units), "--json", str(stream), data=tmp_path / "d")
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "accepted": 5,
        "rejected": 2,
        "duplicates": 0,
    }
    letters = json.loads(tracker("rejects", "--json", data=tmp_path / "d").stdout)
    by_origin = {r["origin"]: r for r in letters}
    assert set(by_origin) == {"mixed.jsonl:2", "mixed.jsonl:3"}
    assert base64.b64decode(by_origin["mixed.jsonl:2"]["raw"]) == b"\xff\xfe not text"
    assert "not UTF-8" in by_origin["mixed.jsonl:2"]["reason"]
    assert by_origin["mixed.jsonl:3"]["raw"] == year_one.decode()


def test_a_registry_dropping_units_with_events_is_refused(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    units, stream = files
    data = tmp_path / "d"
    tracker("ingest", "--units", str(units), str(stream), data=data)
    status = tracker("status", "--json", data=data).stdout
    smaller = tmp_path / "smaller.yaml"  # fj.gat (with events) gone, the city's 2018 book too
    smaller.write_text(
        "\n".join(
            line
            for line in UNITS.splitlines()
            if "fj.gat" not in line and "city-gov, rule" not in line
        ),
        encoding="utf-8",
    )
    refused = tracker("ingest", "--units", str(smaller), str(stream), data=data, check=False)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "drops units the store has events for: fj.gat" in refused.stderr
    assert "city-gov 2018 (fj-2018-city-gov)" in refused.stderr
    assert "--replace-registry" in refused.stderr
    assert tracker("status", "--json", data=data).stdout == status  # nothing was changed

    tracker("ingest", "--units", str(smaller), "--replace-registry", str(stream), data=data)
    assert tracker("status", "--json", data=data).stdout != status


def store_sql(path: Path, sql: str) -> str:
    """One statement on a chDB store, in a process of its own: this one may hold another chDB
    directory (the session's), and one process opens one directory at a time."""
    code = (
        "import sys\n"
        "from sinks.clickhouse import connect\n"
        "client = connect(sys.argv[1])\n"
        "print(client.command(sys.argv[2]))\n"
        "client.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, f"chdb://{path}", sql], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_store_row_this_version_cannot_read_is_a_clear_error(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    """The store's own rows are untrusted input: a rulebook recorded under contract v1
    (`period_days`) is refused with one line saying what to do, not an internal error."""
    units, stream = files
    data = tmp_path / "d"
    tracker("ingest", "--units", str(units), str(stream), data=data)
    key = "rulebook:fj-2018-provincial-dept"
    v1 = """replace(value, '"calendar_days":14', '"period_days":14')"""
    assert (
        store_sql(
            data / "chdb",
            f"SELECT count() FROM tracker.meta FINAL WHERE key = '{key}' AND {v1} != value",
        )
        == "1"
    )
    store_sql(
        data / "chdb",
        f"INSERT INTO tracker.meta SELECT key, {v1}, now64(6) FROM tracker.meta FINAL "
        f"WHERE key = '{key}'",
    )
    result = tracker("status", data=data, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "internal error" not in result.stderr
    assert "rulebook:fj-2018-provincial-dept cannot be read by this version" in result.stderr
    assert "contract v1" in result.stderr


def test_a_worker_with_a_registry_dropping_units_with_events_is_refused(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    """The worker records its registry in the store as ingest does: the same refusal, before any
    broker is contacted (nothing listens on the bootstrap address given here)."""
    units, stream = files
    data = tmp_path / "d"
    tracker("ingest", "--units", str(units), str(stream), data=data)
    status = tracker("status", "--json", data=data).stdout
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(
        "\n".join(line for line in UNITS.splitlines() if "fj.gat" not in line), encoding="utf-8"
    )
    refused = tracker(
        "worker", "--units", str(smaller), "--bootstrap", "127.0.0.1:1", data=data, check=False
    )
    assert refused.returncode == 2, refused.stderr
    assert "drops units the store has events for: fj.gat" in refused.stderr
    assert "--replace-registry" in refused.stderr
    assert tracker("status", "--json", data=data).stdout == status


def test_a_reader_closing_the_pipe_early_is_not_an_error(tmp_path: Path) -> None:
    """`tracker ledger | head -1`: the reader went away; quiet, as any Unix filter is."""
    units = tmp_path / "units.yaml"
    units.write_text(UNITS, encoding="utf-8")
    stream = tmp_path / "events.jsonl"
    findings = [  # far more ledger output than a pipe buffer holds
        {"event_id": f"f{i}", "type": "terminal.finding", "unit": "fj.gat",
         "at": "2018-05-01T10:00:00+08:00", "terminal": f"T{i}", "finding": "unregistered"}
        for i in range(3000)
    ]  # fmt: skip
    stream.write_text("\n".join(json.dumps(f) for f in findings) + "\n", encoding="utf-8")
    data = tmp_path / "d"
    tracker("ingest", "--units", str(units), str(stream), data=data)
    for command in ("ledger", "ledger --json", "rejects"):
        result = subprocess.run(
            f"{sys.executable} -m tracker.cli {command} | head -1",
            shell=True,
            capture_output=True,
            text=True,
            env={**os.environ, "TRACKER_DATA": str(data), "TRACKER_STORE": ""},
            timeout=300,
        )
        assert result.stderr == "", (command, result.stderr)


def test_python_m_tracker_and_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    env = {**os.environ, "TRACKER_DATA": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "--version"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tracker {version('deduction-tracker')}"
    helped = subprocess.run(
        [sys.executable, "-m", "tracker", "--help"], capture_output=True, text=True, env=env
    )
    assert helped.returncode == 0 and "Usage: tracker" in helped.stdout


def test_a_dsn_naming_another_database_of_a_store_folder_is_told_which_it_holds(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    """An embedded store's folder may hold several databases; a DSN without `?database=` names
    `tracker`. A reader pointed at a folder that holds only another database is told which (it
    refuses, as before); a writer makes the new, empty store it was asked for, and says so: it
    would otherwise accept every event again as new, beside the ledger the user meant."""
    units, stream = files
    store = tmp_path / "store"
    tracker("ingest", "--units", str(units), "--store", f"chdb://{store}?database=bench",
            str(stream), data=tmp_path)  # fmt: skip
    read = tracker("status", "--store", f"chdb://{store}", data=tmp_path, check=False)
    assert read.returncode == 2, read.stderr
    assert (
        "holds no tracker store (no database 'tracker'; the folder holds the tracker store of "
        "database 'bench': add ?database=bench to the DSN to open it)" in read.stderr
    )
    assert len(read.stderr.strip().splitlines()) == 1, read.stderr
    written = tracker("ingest", "--units", str(units), "--store", f"chdb://{store}", str(stream),
                      "--json", data=tmp_path)  # fmt: skip
    said = [line for line in written.stderr.splitlines() if "new, empty store" in line]
    assert len(said) == 1, written.stderr
    assert "database 'tracker'" in said[0] and "database 'bench'" in said[0], said
    assert json.loads(written.stdout)["accepted"] > 0  # a store of its own, as asked
    again = tracker("ingest", "--units", str(units), "--store", f"chdb://{store}", str(stream),
                    data=tmp_path)  # fmt: skip
    assert "new, empty store" not in again.stderr  # said once: the store exists now
