"""A `tracker worker` (the batch path) that starts again continues from its partitions'
checkpoints instead of replaying them from offset 0 (issue 12, item 4), and still ends with
exactly what `tracker ingest` makes of the same events: after a clean stop (checkpoints at the
stop), after kill -9 (the periodic ones), and with checkpoints it must not trust."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from config.signing import make_key_file
from tests.integration.kafka_fixture import kafka_broker, local_kafka  # noqa: F401
from tests.integration.test_streaming import (
    FAST,
    Worker,
    assert_same_as_ingest,
    demo_lines,
    drain,
    post,
    reference,
    running,
    unique_topic,
)

pytestmark = pytest.mark.integration

REBUILT = re.compile(r"rebuilt up to offset -?\d+: (\d+) records replayed")


def _replayed(worker: Worker, start: int) -> int:
    """Records the worker's `start`-th run read again to rebuild its partitions' engines."""
    log = worker.log.read_text(errors="replace")
    run = log.split(f"=== start {start} ===", 1)[1].split("=== start", 1)[0]
    return sum(int(n) for n in REBUILT.findall(run))


def _checkpointed(worker: Worker, partitions: int = 4, timeout_s: float = 60) -> None:
    """Wait until the worker has written a checkpoint per partition: it writes them after the
    batch's offsets are committed, which is all `drain` waits for (a kill -9 right after the
    commit would find none, and the test would measure a race, not the restart)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.remote(timeout_s=2).progress()["checkpoints"]["written"] >= partitions:
            return
        time.sleep(0.2)


def _restart(worker: Worker, bootstrap: str, prefix: str, lines: list[str], kill: bool) -> None:
    """Post two thirds, let the worker store them, stop it (SIGTERM or kill -9), start it
    again and post the rest."""
    cut = 2 * len(lines) // 3
    post(bootstrap, prefix, lines[:cut])
    worker.wait_web()
    drain(bootstrap, prefix)
    if kill:
        _checkpointed(worker)
        worker.kill()
    else:
        assert worker.stop() == 0, worker.tail()
    worker.start()
    post(bootstrap, prefix, lines[cut:])
    worker.wait_web()
    drain(bootstrap, prefix)


@pytest.mark.parametrize(
    ("kill", "every"),
    [
        (False, "50000"),  # a clean stop: each partition checkpointed at the stop
        (True, "300"),  # kill -9: the last periodic checkpoint of each partition
    ],
)
def test_a_restarted_worker_does_not_replay_its_partitions(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
    kill: bool,
    every: str,
) -> None:
    prefix = unique_topic("ckpt")
    lines = demo_lines(seed=41, scale=0.1)
    worker = Worker(
        kafka_broker, prefix, tmp_path / "w", extra=(*FAST, "--checkpoint-every", every)
    )
    with running(worker):
        _restart(worker, kafka_broker, prefix, lines, kill)
        assert_same_as_ingest(worker.remote(), reference(lines))
    first_part = 2 * len(lines) // 3
    replayed = _replayed(worker, 1)
    # a clean stop checkpoints every partition at its last record; after kill -9 at most the
    # records since each partition's last periodic checkpoint (300 + a batch) are read again
    bound = 0 if not kill else 4 * (300 + 5_000)
    assert replayed <= min(bound, first_part // 2), (replayed, first_part, worker.tail())


def test_a_checkpoint_of_another_key_is_not_trusted(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The second run signs with another key: the first run's checkpoints are not trusted (one
    warning each), the partitions are replayed from offset 0, and the result is the same."""
    prefix = unique_topic("ckptkey")
    lines = demo_lines(seed=43, scale=0.05)
    worker = Worker(kafka_broker, prefix, tmp_path / "w")
    with running(worker):
        cut = len(lines) // 2
        post(kafka_broker, prefix, lines[:cut])
        worker.wait_web()
        drain(kafka_broker, prefix)
        assert worker.stop() == 0, worker.tail()
        worker.env["TRACKER_SIGNING_KEY"] = str(tmp_path / "other.key")
        make_key_file(tmp_path / "other.key")
        worker.start()
        post(kafka_broker, prefix, lines[cut:])
        worker.wait_web()
        drain(kafka_broker, prefix)
        assert_same_as_ingest(worker.remote(), reference(lines))
    run = worker.log.read_text(errors="replace").split("=== start 1 ===", 1)[1]
    assert "is not signed with this writer's key: not used; replaying from offset 0" in run
    assert _replayed(worker, 1) >= cut
