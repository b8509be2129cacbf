"""`tracker report` in a real headless Chromium (issue 11, item 5).

A chDB store is built with `tracker ingest` from a small stream of 福建省公安厅's 2018 events that
has deductions, caps (partial and zero), a retraction that frees headroom (capped entries
re-evaluated), a feedback that reverses an overdue deduction, and deadlines in every status. The
report of that unit and year is opened in Debian's Chromium over the DevTools protocol: it loads
with no console error and no request off the page, the chart draws one step line per indicator
with the expected points, and every number on it matches `tracker status --json`. A screenshot
is kept in tests/artifacts/report-*.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from config.registry import DEMO_REGISTRY

# websockets is a dev dependency (pyproject.toml); a venv made from a lock without it skips here.
pytest.importorskip("websockets.sync.client", reason="websockets missing: run scripts/lock")
from tests.integration.cdp import Page, chromium, chromium_path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        chromium_path() is None, reason="chromium is not installed (scripts/bootstrap installs it)"
    ),
]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
UNIT, YEAR = "fj.gat", 2018  # 福建省公安厅, rulebook fj-2018-provincial-dept (cii-netsec max 3)


def _event(event_id: str, type_: str, at: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"event_id": event_id, "type": type_, "at": at + "+08:00"}
    if type_ != "clock.tick":
        body["unit"] = UNIT
    return body | fields


STREAM = [
    # -1 (item 6); not repaired within 2 weeks: overdue at 2018-02-16 00:00, first capped to 0
    _event("n1", "vuln.notice", "2018-02-01T10:00:00", notice_id="V-1", system="门户网站"),
    # -0.5 per terminal (item 2), later retracted: the overdue of V-1 is re-evaluated to -1
    _event(
        "o1",
        "outreach.notice",
        "2018-02-05T09:00:00",
        notice_id="O-1",
        terminals=["PC-01", "PC-02"],
    ),
    # -1; the notice's own due is shown but the clause's 2 weeks judge it; feedback in time: met
    _event(
        "n2",
        "vuln.notice",
        "2018-02-10T10:00:00",
        notice_id="V-2",
        system="办公系统",
        due="2018-02-20T00:00:00+08:00",
    ),
    _event("f2", "vuln.feedback", "2018-02-12T10:00:00", notice_id="V-2"),
    _event("k1", "clock.tick", "2018-03-01T00:00:00"),
    # the indicator is used up: recorded as capped with 0 applied
    _event("x1", "extranet.notice", "2018-03-05T10:00:00", notice_id="X-1"),
    _event("r1", "event.retracted", "2018-03-10T10:00:00", target_event_id="o1", reason="误报"),
    # -2, the whole graded-protection indicator
    _event("m1", "mlps.finding", "2018-04-01T10:00:00", system="门户网站"),
    # overdue after the tick, then a feedback dated before the due arrives: met, reversed
    _event("n3", "vuln.notice", "2018-05-01T10:00:00", notice_id="V-3", system="数据中心"),
    _event("k2", "clock.tick", "2018-05-20T00:00:00"),
    _event("f3", "vuln.feedback", "2018-05-10T10:00:00", notice_id="V-3"),
    # feedback after the due: late
    _event("n4", "vuln.notice", "2018-06-01T10:00:00", notice_id="V-4", system="邮件系统"),
    _event("f4", "vuln.feedback", "2018-06-25T10:00:00", notice_id="V-4"),
    # retracted notice: withdrawn
    _event("n5", "vuln.notice", "2018-07-01T10:00:00", notice_id="V-5", system="测试系统"),
    _event(
        "r5", "event.retracted", "2018-07-02T10:00:00", target_event_id="n5", reason="通报对象有误"
    ),
    # still open at the end of the stream
    _event("n6", "vuln.notice", "2018-12-25T10:00:00", notice_id="V-6", system="视频会议"),
    _event("k3", "clock.tick", "2018-12-28T00:00:00"),
]
# Points of each indicator's step line: the year's start at its maximum, then one per instant at
# which the standing deductions (after reversals) change what remains.
EXPECTED_POINTS = {
    "cii-netsec": 4,  # start 3; V-1 2018-02-01 -> 2; V-2 02-10 -> 1; V-1 overdue 02-16 -> 0
    "emergency": 1,  # no rule fires: a flat line at 2
    "secrecy": 1,  # no rule fires: a flat line at 3
    "mlps": 2,  # start 2; 门户网站 2018-04-01 -> 0
}


def tracker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("report")
    env = {**os.environ, "TRACKER_DATA": str(tmp / "data"), "TRACKER_STORE": ""}
    store = f"chdb://{tmp / 'store'}"
    stream = tmp / "events.jsonl"
    stream.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in STREAM) + "\n")
    done = tracker(
        env, "ingest", "--units", str(DEMO_REGISTRY), "--store", store, "--json", str(stream)
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["rejected"] == 0
    status = tracker(env, "status", "--store", store, "--unit", UNIT, "--year", str(YEAR), "--json")
    assert status.returncode == 0, status.stderr
    ledger = tracker(env, "ledger", "--store", store, "--unit", UNIT, "--year", str(YEAR), "--json")
    assert ledger.returncode == 0, ledger.stderr
    html, pdf = tmp / "report.html", tmp / "report.pdf"
    report = tracker(
        env, "report", "--unit", UNIT, "--year", str(YEAR), "--store", store,
        "--out", str(html), "--pdf", str(pdf),
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    return {
        "env": env,
        "store": store,
        "html": html,
        "pdf": pdf,
        "status": json.loads(status.stdout)[0],
        "ledger": [json.loads(line) for line in ledger.stdout.splitlines()],
    }


def _open(page: Page, html: Path) -> None:
    page.send("Runtime.enable")
    page.send("Log.enable")
    page.goto(html.as_uri())


def test_report_loads_without_errors_or_requests_and_draws_the_chart(built: dict[str, Any]) -> None:
    with chromium(width=1200, height=900) as page:
        _open(page, built["html"])
        errors = [
            e
            for e in page.events(
                "Runtime.exceptionThrown", "Runtime.consoleAPICalled", "Log.entryAdded"
            )
            if e["method"] == "Runtime.exceptionThrown"
            or e["params"].get("type") == "error"
            or e["params"].get("entry", {}).get("level") == "error"
        ]
        assert errors == []
        # self-contained: the page itself is the only thing loaded
        urls = [e["params"]["request"]["url"] for e in page.events("Network.requestWillBeSent")]
        assert urls == [built["html"].as_uri()]

        series = page.evaluate(
            "[...document.querySelectorAll('svg#points-chart g.series')].map(g => ({"
            " id: g.dataset.indicator, points: g.querySelectorAll('circle.point').length,"
            " last: g.dataset.remaining, width: g.querySelector('path.step').getBBox().width}))"
        )
        assert {s["id"]: s["points"] for s in series} == EXPECTED_POINTS
        remaining = {i["id"]: Decimal(i["remaining"]) for i in built["status"]["indicators"]}
        assert {s["id"]: Decimal(s["last"]) for s in series} == remaining
        assert all(s["width"] > 100 for s in series)  # each line spans the year on screen

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(ARTIFACTS / f"report-{UNIT}-{YEAR}.png")

        # the Chinese is drawn with a CJK font, not boxes (tofu)
        page.send("DOM.enable")
        page.send("CSS.enable")
        root = page.send("DOM.getDocument")["root"]["nodeId"]
        for selector in ("h1", "#deductions tbody tr td.clause"):
            node = page.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
            fonts = page.send("CSS.getPlatformFontsForNode", nodeId=node)["fonts"]
            assert any("CJK" in f["familyName"] for f in fonts), (selector, fonts)


def test_report_numbers_match_status(built: dict[str, Any]) -> None:
    status, ledger = built["status"], built["ledger"]
    with chromium() as page:
        _open(page, built["html"])
        assert page.text("#total-deducted") == status["deducted"]
        shown = page.evaluate(
            "[...document.querySelectorAll('#indicators tbody tr')].map(r => ({"
            " id: r.dataset.indicator, name: r.querySelector('.name').innerText,"
            " max: r.querySelector('.max').innerText, deducted: r.querySelector('.deducted').innerText,"
            " remaining: r.querySelector('.remaining').innerText}))"
        )
        assert shown == status["indicators"]
        deadlines = page.evaluate(
            "[...document.querySelectorAll('#deadlines tbody tr')].map(r => ({"
            " ref: r.dataset.ref, due: r.querySelector('.due').innerText,"
            " status: r.querySelector('.status').dataset.status}))"
        )
        assert deadlines == [
            {k: d[k] for k in ("ref", "due", "status")} for d in status["deadlines"]
        ]
        assert {d["status"] for d in deadlines} == {"open", "met", "late", "overdue", "withdrawn"}
        # every ledger entry, in ledger order, with its amounts and its rule's clause
        rows = page.evaluate(
            "[...document.querySelectorAll('#deductions tbody tr')].map(r => ({"
            " id: r.dataset.entry, requested: r.querySelector('.requested').innerText,"
            " applied: r.querySelector('.applied').innerText,"
            " events: r.querySelector('.events').innerText, clause: r.querySelector('.clause').innerText}))"
        )
        assert [r["id"] for r in rows] == [e["entry_id"] for e in ledger]
        assert [(r["requested"], r["applied"]) for r in rows] == [
            (e["requested"], e["applied"]) for e in ledger
        ]
        assert all(
            eid in r["events"] for r, e in zip(rows, ledger, strict=True) for eid in e["event_ids"]
        )
        overdue = next(r for r, e in zip(rows, ledger, strict=True) if e["item"] == "7")
        assert "接到通報2周內未按要求修復反饋" in overdue["clause"]
        text = page.text()
        assert "福建省公安厅" in text
        assert "误报" in text  # the retraction's reason
        assert text.count("reversal") >= 1


def test_pdf_is_printed(built: dict[str, Any]) -> None:
    pdf = built["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 10_000


def test_pdf_without_chromium_is_one_line_error(built: dict[str, Any], tmp_path: Path) -> None:
    env = {**built["env"], "PATH": str(tmp_path)}  # no chromium on this PATH
    done = tracker(
        env, "report", "--unit", UNIT, "--year", str(YEAR), "--store", built["store"],
        "--out", str(tmp_path / "r.html"), "--pdf", str(tmp_path / "r.pdf"),
    )  # fmt: skip
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "chromium" in done.stderr
    assert (tmp_path / "r.html").exists() and not (tmp_path / "r.pdf").exists()
