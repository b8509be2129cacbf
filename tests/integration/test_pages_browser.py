"""The two web pages in a real headless Chromium (issue 10, item 3).

The real `tracker serve` (embedded backend into chDB) runs in a subprocess on a free port; the
browser signs in with the tokens `tracker principals add` printed, posts a vuln.notice through
the centre's form (first with an error, shown next to its field), then, as the unit, sees the
notice with its time left, presses 修复反馈, and `tracker status --json` shows the deadline `met`.
A screenshot of every page is kept in tests/artifacts/serve-*.png.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
UNIT = "fj.gat"  # 福建省公安厅
NOTICE = "FJ-WEB-2026-001"


def _tracker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tracker", *args]
    return subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _token(env: dict[str, str], *args: str) -> str:
    done = _tracker(env, "principals", "add", *args)
    assert done.returncode == 0, done.stderr
    tokens = [w for w in done.stdout.split() if w.startswith("trk.")]
    assert len(tokens) == 1, done.stdout
    return tokens[0]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "TRACKER_DATA": str(tmp_path / "data"),
        "TRACKER_STORE": f"chdb://{tmp_path / 'chdb'}",
        "TRACKER_PRINCIPALS": str(tmp_path / "principals.json"),
        "TRACKER_UNITS": str(DEMO_REGISTRY),
    }
    env.pop("TRACKER_KAFKA", None)  # no broker: the embedded pipeline
    return env


@contextmanager
def _serving(tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """`tracker serve` on a free port until the block ends (then the store is free again)."""
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc, tmp_path / "serve.log")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"tracker serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(base + "/docs", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"tracker serve did not answer within 90s:\n{log.read_text()}")


def _sign_in(page: Page, base: str, token: str, shot: str | None = None) -> None:
    page.goto(base + "/")
    assert "/login" in page.url()  # not signed in: the login page
    page.type("#token", token)
    if shot:
        page.screenshot(ARTIFACTS / shot)
    page.click("#login-submit", navigates=True)
    tracker_cookie = [c for c in page.cookies() if c["name"] == "tracker_token"]
    assert tracker_cookie, "no session cookie"
    assert tracker_cookie[0]["httpOnly"] is True
    assert tracker_cookie[0]["sameSite"] == "Strict"


def test_post_a_notice_and_report_feedback_in_the_browser(tmp_path: Path) -> None:
    env = _env(tmp_path)
    centre = _token(env, "--role", "centre", "--name", "福建省网络与信息安全信息通报中心")
    unit = _token(env, "--role", "unit", "--scope", UNIT, "--name", "福建省公安厅")

    with _serving(tmp_path, env) as base, chromium() as page:
        walk_through(page, base, centre, unit)

    # -- the store agrees: the deadline is met ------------------------------------------------
    done = _tracker(env, "status", "--unit", UNIT, "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    deadlines = [d for year in status for d in year["deadlines"] if d["ref"] == NOTICE]
    assert [d["status"] for d in deadlines] == ["met"], status


def walk_through(page: Page, base: str, centre: str, unit: str) -> None:
    """What the centre's clerk and the unit's administrator do, with checks on every page."""
    # -- the centre posts a notice; an invalid one first -------------------------------
    _sign_in(page, base, centre, shot="serve-login.png")
    assert page.url().startswith(base + "/notices/new")
    assert "发布通报" in page.text("h1")
    page.choose("#in-unit", UNIT)
    page.type("#in-notice_id", NOTICE)
    page.type("#in-system", "")  # a required field left empty
    page.set_value("#in-due", "2020-01-01T00:00:00")  # before the notice: refused
    page.click("#submit", navigates=True)
    assert page.text("#error-system") == "必填。"
    assert page.text("#error-due") == "整改期限必须晚于通报时间。"
    assert page.exists("#field-system.invalid")
    assert not page.exists("#posted")
    page.screenshot(ARTIFACTS / "serve-notice-errors.png")

    # what was typed is kept; fix the two fields and post again
    assert page.evaluate("document.querySelector('#in-notice_id').value") == NOTICE
    assert page.evaluate("document.querySelector('#in-unit').value") == UNIT
    page.type("#in-system", "福建省公安厅政务服务平台")
    page.set_value("#in-due", "")
    page.click("#submit", navigates=True)
    assert "重大漏洞通报" in page.text("#posted"), page.text()
    assert not page.exists("#form-errors")
    page.screenshot(ARTIFACTS / "serve-notice-posted.png")

    # another type's tab has that type's fields
    page.click('nav.tabs a[href$="type=outreach.notice"]', navigates=True)
    assert "违规外联通报" in page.text("#field-type")
    assert page.exists("textarea#in-terminals") and page.exists("select#in-cause")
    assert not page.exists("#in-system") and not page.exists("#in-due")
    page.screenshot(ARTIFACTS / "serve-notice-outreach.png")

    page.click("header form button", navigates=True)  # 退出
    assert "/login" in page.url()
    assert not [c for c in page.cookies() if c["name"] == "tracker_token"]

    # -- the unit sees it, with its time left, and reports 修复反馈 ----------------------
    _sign_in(page, base, unit)
    assert page.url().startswith(base + "/unit")
    row = f'#open-deadlines tr[data-ref="{NOTICE}"]'
    text = page.text(row)
    # 2 weeks (contract 5.7): 24:00 of the 14th day after today, Beijing time
    assert "重大漏洞通报" in text
    assert "剩余 14 天" in text or "剩余 13 天" in text, text
    assert "整改中" in text
    page.screenshot(ARTIFACTS / "serve-unit.png")

    page.click(f"{row} button", navigates=True)
    assert NOTICE in page.text("#done")
    assert not page.exists(row)
    assert "按期反馈" in page.text(f'#closed-deadlines tr[data-ref="{NOTICE}"]')
    page.screenshot(ARTIFACTS / "serve-unit-reported.png")


def test_the_api_docs_render_with_no_internet(tmp_path: Path) -> None:
    """`/docs` is served whole by the tracker: a province's intranet reaches no CDN, and FastAPI's
    own page loads Swagger UI's script, style and icon from one (a blank page there)."""
    env = _env(tmp_path)
    with _serving(tmp_path, env) as base:
        with urllib.request.urlopen(base + "/docs", timeout=10) as answer:
            html = answer.read().decode()
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets, html
        assert [a for a in assets if not a.startswith("/")] == [], html  # every one ours
        for asset in assets:
            with urllib.request.urlopen(base + asset, timeout=10) as answer:
                assert answer.status == 200, asset
        with chromium() as page:
            page.goto(base + "/docs")
            deadline = time.monotonic() + 20
            while not page.exists(".opblock") and time.monotonic() < deadline:
                time.sleep(0.2)
            text = page.text()
            assert "/v1/events" in text, text
            assert "Deduction tracker" in text, text
            page.screenshot(ARTIFACTS / "serve-docs.png")
