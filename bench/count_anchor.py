"""The anchors of bench/stream_bench.py: consumers that only count the input topic's records.

    python bench/count_anchor.py faust   --bootstrap HOST:PORT --topic T --expected N --ready F --done F
    python bench/count_anchor.py aiokafka --bootstrap HOST:PORT --topic T --expected N --ready F --done F

`faust`: a faust-streaming app whose one agent counts the records of the topic (a consumer group
of its own, Faust's default acks and commits, in-memory store, no web server), run by a Faust
worker without its terminal spinner, as the tracker's worker runs (the spinner sets the root
logger to DEBUG, which would make the anchor slower than Faust is). `aiokafka`: a bare consumer
in a group of its own, `getmany` in batches. Each writes `--ready` once it has partitions
assigned and `--done` (wall-clock time, `time.time()`) when it has counted `--expected` records;
the bench produces between the two. Both log in as the local broker's admin
(TRACKER_KAFKA_CREDENTIALS), so no ACL has to be granted for their groups.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.kafka_auth import aiokafka_kwargs, faust_credentials, local_admin


def _mark(path: str, text: str) -> None:
    Path(path).write_text(text)


def run_faust(args: argparse.Namespace) -> int:
    import faust

    # Faust's data dir defaults to one named after the app in the current directory: a run from
    # the repository left one there per anchor run.
    datadir = tempfile.mkdtemp(prefix="anchor-faust-")
    app = faust.App(
        f"{args.topic}-anchor-faust",
        broker=f"kafka://{args.bootstrap}",
        broker_credentials=faust_credentials(local_admin()),
        store="memory://",
        datadir=datadir,
        autodiscover=False,
        web_enabled=False,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
    counted = [0]

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for _ in stream:
            counted[0] += 1
            if counted[0] == args.expected:
                _mark(args.done, repr(time.time()))

    async def assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        if assigned:
            _mark(args.ready, "ready")

    app.on_partitions_assigned.connect(assigned)

    class Quiet(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            pass

    worker = Quiet(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        shutil.rmtree(datadir, ignore_errors=True)
    return 0


async def count_aiokafka(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.abc import ConsumerRebalanceListener

    class Ready(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        async def on_partitions_assigned(self, assigned: Any) -> None:
            if assigned:
                _mark(args.ready, "ready")

    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=f"{args.topic}-anchor-aiokafka",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        **aiokafka_kwargs(local_admin()),
    )
    consumer.subscribe([args.topic], listener=Ready())
    await consumer.start()
    try:
        counted = 0
        while True:
            for records in (await consumer.getmany(timeout_ms=200, max_records=10_000)).values():
                before = counted
                counted += len(records)
                if before < args.expected <= counted:
                    _mark(args.done, repr(time.time()))
    finally:
        await consumer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("faust", "aiokafka"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--done", required=True)
    args = parser.parse_args()
    if args.kind == "faust":
        return run_faust(args)
    asyncio.run(count_aiokafka(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
