"""`tracker demo` (live): the processes it starts run the tracker CLI."""

from __future__ import annotations

import os
from pathlib import Path

from tracker import live_demo


def test_the_demo_starts_its_worker_through_the_cli(tmp_path: Path) -> None:
    # `python -m streams` is gone (issue 9): the worker and ticker are `python -m tracker ...`
    log = tmp_path / "worker.log"
    proc = live_demo._spawn(["worker", "--help"], log, dict(os.environ))
    assert proc.wait(timeout=120) == 0, log.read_text(errors="replace")
    assert "--role" in log.read_text(errors="replace")
