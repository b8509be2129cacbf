"""`tracker serve` as a real process (uvicorn on a free port), posted to with httpx: a centre's
notice and a unit's feedback make the deadline `met`, and the API answers what
`tracker status --json` prints for the same store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from config.registry import DEMO_REGISTRY
from tests.integration.kafka_fixture import free_ports

pytestmark = pytest.mark.integration


def tracker_serve(*args: str, env: dict[str, str]) -> list[str]:
    """`tracker ARGS` as a user runs it (`python -m tracker` is the same program)."""
    return [sys.executable, "-m", "tracker", *args]


def test_serve_as_a_process(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TRACKER_DATA": str(tmp_path),
        "TRACKER_PRINCIPALS": str(tmp_path / "p.json"),
    }
    tokens = {}
    for name, args in {
        "centre": ["--role", "centre"],
        "unit": ["--role", "unit", "--scope", "fj.gat"],
    }.items():
        made = subprocess.run(
            tracker_serve("principals", "add", *args, env=env),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        tokens[name] = made.stdout.strip()
    (port,) = free_ports(1)
    store = f"chdb://{tmp_path / 'chdb'}"
    server = subprocess.Popen(
        tracker_serve(
            "serve", "--port", str(port), "--units", str(DEMO_REGISTRY), "--store", store, env=env
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server)
        with httpx.Client(base_url=base, timeout=30) as client:
            centre = {"Authorization": f"Bearer {tokens['centre']}"}
            unit = {"Authorization": f"Bearer {tokens['unit']}"}
            notice = {"event_id": "n-1", "type": "vuln.notice", "unit": "fj.gat",
                      "notice_id": "V-1", "system": "OA", "at": "2018-03-01T10:00:00+08:00"}  # fmt: skip
            feedback = {"event_id": "f-1", "type": "vuln.feedback", "unit": "fj.gat",
                        "notice_id": "V-1", "at": "2018-03-10T10:00:00+08:00"}  # fmt: skip
            assert client.post("/v1/events", json=notice).status_code == 401
            posted = client.post("/v1/events", json=notice, headers=centre)
            assert posted.json() == {"accepted": 1, "duplicates": 0, "rejected": [],
                                     "backend": "embedded"}  # fmt: skip
            assert client.post("/v1/events", json=feedback, headers=centre).status_code == 403
            jsonl = (json.dumps(feedback) + "\n").encode()
            answered = client.post(
                "/v1/events",
                content=jsonl,
                headers={**unit, "Content-Type": "application/x-ndjson"},
            )
            assert answered.json()["accepted"] == 1
            status = client.get(
                "/v1/status", params={"unit": "fj.gat", "year": 2018}, headers=unit
            ).json()
            assert status[0]["deadlines"] == [
                {"ref": "V-1", "due": "2018-03-16T00:00:00+08:00", "status": "met"}
            ]
            assert (
                client.get("/v1/status", params={"unit": "fj.fz"}, headers=unit).status_code == 403
            )
            assert "/v1/events" in client.get("/openapi.json").json()["paths"]
            assert client.get("/docs").status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0, out
    # the API's answer is what `tracker status --json` prints for the store
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracker",
            "status",
            "--store",
            store,
            "--unit",
            "fj.gat",
            "--year",
            "2018",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == status


def _wait_ready(base: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(
                f"tracker serve exited: {server.stdout.read() if server.stdout else ''}"
            )
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("tracker serve did not answer within 90 s")
