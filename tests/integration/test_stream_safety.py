"""What no record, no neighbour and no crash may do to a worker (issue 7): workers of different
topic prefixes sharing one data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.kafka_fixture import kafka_broker, local_kafka  # noqa: F401
from tests.integration.test_streaming import (
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


def test_workers_of_two_prefixes_share_one_data_dir(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    shared = tmp_path / "data"
    lines = demo_lines(seed=41)[:400]
    # The default table store keeps files in the data dir; small snapshot intervals make both
    # workers write there.
    extra = ("--table-store", "rocksdb", "--snapshot-every", "5", "--commit-interval-s", "0.2",
             "--sink-within-s", "0.2", "--session-timeout-s", "6")  # fmt: skip
    a = Worker(kafka_broker, unique_topic("nsa"), tmp_path / "a", data=shared, extra=extra)
    b = Worker(kafka_broker, unique_topic("nsb"), tmp_path / "b", data=shared, extra=extra)
    with running(b):
        b.wait_web()
        post(kafka_broker, b.prefix, lines[:60])
        drain(kafka_broker, b.prefix)
        assert b.stop() == 0
    with running(a):
        a.wait_web()
        post(kafka_broker, a.prefix, lines)
        drain(kafka_broker, a.prefix)
        assert a.stop() == 0
    with running(b):  # b again, after a wrote to the same data dir
        b.wait_web()
        post(kafka_broker, b.prefix, lines[60:120])
        drain(kafka_broker, b.prefix, timeout_s=60)
        assert b.proc is not None and b.proc.poll() is None, b.tail()
        assert_same_as_ingest(b.remote(), reference(lines[:120]))
