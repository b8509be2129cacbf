"""The worker started by Faust's own command line, `faust -A streams.app worker`, configured by
the environment alone (TRACKER_ variables, config/settings.py), on a real broker: it creates the
topics, loads the registry at startup, serves its web views and writes what `ingest` writes
(issue 9, item 6). `tracker worker` is covered by test_streaming.py and the other test_stream_*.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.registry import DEMO_REGISTRY
from tests.integration.kafka_fixture import kafka_broker, local_kafka, unique_topic  # noqa: F401
from tests.integration.test_streaming import (
    Worker,
    assert_same_as_ingest,
    demo_lines,
    drain,
    post,
    reference,
    running,
)

pytestmark = pytest.mark.integration
FAUST = Path(sys.executable).parent / "faust"


@dataclass
class FaustWorker(Worker):
    """`faust -A streams.app worker`, every setting from the environment."""

    def start(self) -> Worker:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "TRACKER_KAFKA": self.bootstrap,
            "TRACKER_TOPIC_PREFIX": self.prefix,
            "TRACKER_UNITS": str(DEMO_REGISTRY),
            "TRACKER_ROLE": self.role,
            "TRACKER_WEB_PORT": str(self.web_port),
            "TRACKER_STORE": self.dsn,
            "TRACKER_DATA": str(self.data_dir),
            "TRACKER_COMMIT_INTERVAL_S": "0.2",
            "TRACKER_SINK_WITHIN_S": "0.2",
            "TRACKER_SESSION_TIMEOUT_S": "6",
            **self.env,
        }
        with self.log.open("ab") as out:
            out.write(f"\n=== start {self.starts} ===\n".encode())
            self.proc = subprocess.Popen(
                [str(FAUST), "-A", "streams.app", "worker", "-l", "info"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.starts += 1
        return self


def test_faust_command_line_runs_the_worker_from_the_environment(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = unique_topic("faustcli")
    lines = demo_lines(seed=23)[:400]
    worker = FaustWorker(kafka_broker, prefix, tmp_path / "w")
    with running(worker):
        worker.wait_web()
        progress = worker.remote().progress()
        assert (progress["role"], progress["app_id"]) == ("all", f"{prefix}-worker")
        summary = post(kafka_broker, prefix, lines)
        assert summary.sent == len(lines) and summary.rejected == 0
        drain(kafka_broker, prefix)
        assert_same_as_ingest(worker.remote(), reference(lines))
        assert worker.stop() == 0, worker.tail()
    # Faust's data directory is the app id's own (WorkerSettings.faust_dir)
    assert (tmp_path / "w" / "data" / "faust" / f"{prefix}-worker").is_dir()
