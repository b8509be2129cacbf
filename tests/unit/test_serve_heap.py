"""`tracker serve` takes what it made at start out of the collector's scans before it serves
(issue 10: single posts' p99): a full collection stops every request, and it scanned the
modules, the app, the registry and the state read at start each time (a gc.callbacks probe saw
58-65 ms pauses in the server during the latency benchmark)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from config.registry import DEMO_REGISTRY
from tracker.serve_cli import register


def test_the_server_freezes_its_start_before_it_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}

    def run(app: object, **options: object) -> None:
        seen["frozen"] = gc.get_freeze_count()

    monkeypatch.setattr(uvicorn, "run", run)
    gc.unfreeze()
    app = typer.Typer()
    register(app)
    try:
        done = CliRunner().invoke(
            app,
            [
                "serve",
                "--store",
                "memory:",
                "--units",
                str(DEMO_REGISTRY),
                "--principals",
                str(tmp_path / "p.json"),
            ],
        )
    finally:
        gc.unfreeze()  # the rest of the test session is collected as usual
    assert done.exit_code == 0, done.output
    assert seen["frozen"] > 10_000  # the modules and the app at least
