"""Crash safety of the live pipeline: kill -9 at random moments, workers sharing partitions with
rebalances mid-stream, and the store down for a while. Each run must end with exactly the ledger,
deadlines and status that `tracker ingest` gives for the same events: nothing lost, nothing
doubled."""

from __future__ import annotations

import random
import re
import threading
import time
from pathlib import Path

import pytest

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


def _wait(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_at_random_moments_changes_nothing(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
    seed: int,
) -> None:
    rng = random.Random(seed)
    prefix = unique_topic(f"kill{seed}")
    lines = demo_lines(seed=100 + seed, scale=0.1)
    cuts = sorted(rng.sample(range(1, len(lines)), 3))
    chunks = [lines[a:b] for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    worker = Worker(kafka_broker, prefix, tmp_path / "w", extra=FAST)
    with running(worker):
        for i, chunk in enumerate(chunks):
            post(kafka_broker, prefix, chunk)
            if i < len(chunks) - 1:
                # anywhere from startup, group join and rebuild to the middle of processing
                time.sleep(rng.uniform(0.2, 5.0))
                worker.kill()
                worker.start()
        worker.wait_web()
        drain(kafka_broker, prefix)
        assert_same_as_ingest(worker.remote(), reference(lines))
    log = worker.log.read_text(errors="replace")
    rebuilds = re.findall(r"rebuilt up to offset -?\d+: (\d+) records replayed \((\d+) of", log)
    replayed = sum(int(n) for n, _ in rebuilds)
    skipped = sum(int(n) for _, n in rebuilds)
    print(
        f"seed {seed}: {len(lines)} events, {worker.starts - 1} kill -9, {len(rebuilds)} "
        f"rebuilds, {replayed} records replayed, {skipped} emitted for records Faust skipped"
    )


# Loaded by the worker's interpreter at start (PYTHONPATH): SIGKILL at one exact step.
KILL_AT = """
import os
import signal

where, nth = os.environ["KILL_AT"].rsplit(":", 1)
calls = []


def kill_on_nth():
    calls.append(1)
    if len(calls) == int(nth):
        os.kill(os.getpid(), signal.SIGKILL)


if where == "store-insert-ledger":
    import sinks.clickhouse

    announce = sinks.clickhouse.before_write  # before each insert of rows, whole or prepared

    def before_write(table):
        if table == "ledger":
            kill_on_nth()  # this batch's events are in the store, its ledger rows are not
        announce(table)

    sinks.clickhouse.before_write = before_write
elif where == "processor-release":
    import streams.holds

    release = streams.holds.Holds.release_through

    def release_through(self, tp, covered_from, offset):
        kill_on_nth()  # the record's outputs are in Kafka, its input offset not committed
        return release(self, tp, covered_from, offset)

    streams.holds.Holds.release_through = release_through
elif where == "batch-commit":
    import streams.batch

    commit = streams.batch.BatchWorker._commit

    async def _commit(self, offsets):
        kill_on_nth()  # the batch's rows are in the store, its input offsets not committed
        return await commit(self, offsets)

    streams.batch.BatchWorker._commit = _commit
"""


@pytest.mark.parametrize(
    ("kill_at", "split"),
    [
        # between the store's inserts of one batch, before the commit (the batch path)
        ("store-insert-ledger:2", False),
        # between a batch's store write and the commit of its input offsets (the batch path)
        ("batch-commit:3", False),
        # between a record's outputs produced and its input's commit (the per-record path)
        ("processor-release:150", True),
    ],
)
def test_kill_9_between_a_write_and_its_commit_loses_nothing(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
    kill_at: str,
    split: bool,
) -> None:
    prefix = unique_topic("between")
    lines = demo_lines(seed=51)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_AT)
    if split:
        store = Worker(kafka_broker, prefix, tmp_path / "sink", role="sink")
        worker = Worker(kafka_broker, prefix, tmp_path / "w", role="processor", store="memory://")
    else:  # small batches: the kill comes after some batches were committed
        small = (*FAST, "--sink-batch", "200")
        store = worker = Worker(kafka_broker, prefix, tmp_path / "w", extra=small)
    worker.env = {"PYTHONPATH": str(hook), "KILL_AT": kill_at}
    with running(*{id(w): w for w in (store, worker)}.values()):
        store.wait_web()
        worker.wait_web()
        post(kafka_broker, prefix, lines)
        assert worker.proc is not None
        worker.proc.wait(timeout=120)  # it kills itself at that step
        assert worker.proc.returncode == -9
        worker.env = {}
        worker.start()
        worker.wait_web()
        drain(kafka_broker, prefix, role="split" if split else "all")
        assert_same_as_ingest(store.remote(), reference(lines))


# Loaded by the worker's interpreter at start (PYTHONPATH): the sink's stream skips the given
# ledger records the first time they are fetched, the way Faust skips a message it thinks it will
# fetch again (stamped with another consumer generation; it is acked and not delivered).
SKIP_ONCE = """
import os
import streams.holds

hold = streams.holds.Holds.hold
offsets = {int(x) for x in os.environ["SKIP_LEDGER_0"].split(",")}


def skipping_hold(self, message):
    hold(self, message)
    if message.topic.endswith(".ledger") and message.partition == 0 and message.offset in offsets:
        offsets.discard(message.offset)
        message.generation_id = -1


streams.holds.Holds.hold = skipping_hold
"""


@pytest.mark.parametrize(
    "skipped",
    [
        "5",  # Faust's commit used to pass it: the ledger row was lost
        "5,6",  # Faust's commit used to stop there for good: "pipeline stuck"
    ],
)
def test_records_faust_skips_reach_the_store(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
    skipped: str,
) -> None:
    """The per-record path's sink (split roles): the batch path has no Faust stream."""
    prefix = unique_topic("skip")
    lines = demo_lines(seed=52)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SKIP_ONCE)
    worker = Worker(kafka_broker, prefix, tmp_path / "w", role="sink")
    worker.env = {"PYTHONPATH": str(hook), "SKIP_LEDGER_0": skipped}
    processor = Worker(kafka_broker, prefix, tmp_path / "p", role="processor", store="memory://")
    with running(worker, processor):
        worker.wait_web()
        processor.wait_web()
        post(kafka_broker, prefix, lines)
        drain(kafka_broker, prefix, role="split", timeout_s=90)
        assert_same_as_ingest(worker.remote(), reference(lines))
        assert "never reached the sink" in worker.log.read_text()


def test_two_processors_share_partitions_through_rebalances(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = unique_topic("pair")
    lines = demo_lines(seed=21, scale=0.1)
    third = len(lines) // 3
    sink = Worker(kafka_broker, prefix, tmp_path / "sink", role="sink")
    a = Worker(kafka_broker, prefix, tmp_path / "a", role="processor", store="memory://")
    b = Worker(kafka_broker, prefix, tmp_path / "b", role="processor", store="memory://")
    with running(sink, a), running(b):
        for w in (sink, a):
            w.wait_web()
        b.kill()  # started by `running` for its cleanup; it joins below, mid-stream
        streaming = _post_in_background(kafka_broker, prefix, lines[:third], seconds=6)
        _wait(lambda: a.remote().progress().get("processed"), 60, "A to process")
        b.start()  # a rebalance in the middle of processing
        b.wait_web()
        _wait(lambda: _inputs(b) and _inputs(a), 60, "A and B to share the partitions")
        streaming.join()
        assert len(_inputs(a)) + len(_inputs(b)) == 4
        post(kafka_broker, prefix, lines[third : 2 * third])
        _wait(lambda: b.remote().progress().get("processed"), 60, "B to process")
        # A leaves while the last third streams in: B takes every partition.
        streaming = _post_in_background(kafka_broker, prefix, lines[2 * third :], seconds=6)
        time.sleep(1)
        assert a.stop() == 0
        streaming.join()
        drain(kafka_broker, prefix, role="split")
        assert_same_as_ingest(sink.remote(), reference(lines))
        assert len(_inputs(b)) == 4
        assert len(b.remote().progress()["processed"]) == 4


def _post_in_background(
    bootstrap: str, prefix: str, lines: list[str], seconds: float
) -> threading.Thread:
    """Post `lines` in 20 slices spread over `seconds`."""

    def run() -> None:
        step = max(1, len(lines) // 20)
        for i in range(0, len(lines), step):
            post(bootstrap, prefix, lines[i : i + step])
            time.sleep(seconds / 20)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _inputs(worker: Worker) -> list[str]:
    """The input partitions assigned to a worker."""
    assigned = worker.remote().progress()["assigned"]
    return [tp for tp in assigned if tp.startswith(f"{worker.prefix}.events/")]


def test_store_outage_loses_nothing(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = unique_topic("outage")
    lines = demo_lines(seed=31)
    half = len(lines) // 2
    down = tmp_path / "clickhouse-down"
    down.touch()
    worker = Worker(kafka_broker, prefix, tmp_path / "w", extra=(*FAST, "--fault-file", str(down)))

    def failures() -> int:
        return int(worker.remote().progress()["sink"]["failures"])

    with running(worker):
        worker.wait_web()
        post(kafka_broker, prefix, lines[:half])
        _wait(lambda: failures() >= 3, 60, "the sink to retry")
        assert worker.remote().ledger() == []  # nothing written, nothing dropped either
        # A graceful stop in the middle of the retries must not commit the unwritten batches.
        assert worker.stop() == 0
        worker.start()
        worker.wait_web()
        post(kafka_broker, prefix, lines[half:])
        _wait(lambda: failures() >= 2, 60, "the sink to retry after the restart")
        down.unlink()  # the store is back
        drain(kafka_broker, prefix)
        progress = worker.remote().progress()["sink"]
        assert not progress["failing"]
        assert_same_as_ingest(worker.remote(), reference(lines))
