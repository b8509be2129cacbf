"""Benchmark: parts of `tracker ingest`'s path outside the engine, in-process (issue 12, target 1).

    python bench/ingest_rows_parts.py [LINES]        # run in a tree: cd TREE && python ...

A part of the path, never the whole (bench/ingest_ab.py runs the whole CLI). The first LINES
(20,000: one store write) of ingest_bench.py's 200k stream, read as the CLI reads them
(`read_record`), stamped with the tool's envelope at a clock that steps 37 us a line (~27
lines a millisecond), and made into the event log's rows of one write, signed at intake
(`logged_events`, the intake's signature per tree). Prints the minimum CPU time
(`time.process_time`) of 5 passes per line, and a sha256 of every row's fields, every read
record and the first 1,000 envelopes, which must be the same for two trees compared.
Runs the tree it is started in (its `tracker.pipeline` stamp, old or new).
"""

from __future__ import annotations

import hashlib
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd()))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import tracker.pipeline as pipeline
from bench.ingest_bench import stream
from config.intake_signatures import sign_messages
from config.signing import Signer
from engine.step import Parsed, logged_events, read_record


def stamp_class() -> Any:
    """The tree's stamp: `tracker.stamp.Stamp`, or `tracker.pipeline._Stamp` before it moved
    (imported through pipeline, so that another tree's module is never picked up)."""
    old = getattr(pipeline, "_Stamp", None)
    return old if old is not None else pipeline.Stamp


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with stream(200_000, 7, 20.0).open("rb") as source:
        lines = [line for _, line in zip(range(count), source, strict=False)]
    signer = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    start = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
    clock = [start + timedelta(microseconds=37 * i) for i in range(count)]
    best: dict[str, float] = {}

    def timed(name: str, began: float) -> None:
        best[name] = min(best.get(name, float("inf")), time.process_time() - began)

    for _ in range(5):
        began = time.process_time()
        reads = [read_record(line, first=i == 0) for i, line in enumerate(lines)]
        timed("read_record", began)
        stamp = stamp_class()(None, "ingest:stream.jsonl")
        began = time.process_time()
        envelopes = [stamp.at(now) for now in clock]
        timed("stamp.at", began)
        accepted = [
            (read.event, read.raw, i + 1, envelope)
            for i, (read, envelope) in enumerate(zip(reads, envelopes, strict=True))
            if isinstance(read, Parsed)
        ]
        began = time.process_time()
        rows = logged_events(accepted, 0, "", partial(sign_messages, signer))
        timed("logged_events", began)
    for name, seconds in best.items():
        print(f"{name:14} {seconds * 1e3:7.1f} ms  {seconds / count * 1e6:6.2f} us a line")
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row.model_dump_json().encode())
        digest.update(
            repr([(k, type(v).__name__, repr(v)) for k, v in row.__dict__.items()]).encode()
        )
    for read in reads:
        digest.update(repr(read).encode())
    for envelope in envelopes[:1000]:
        digest.update(envelope.model_dump_json().encode())
    print("sha256 of the outputs:", digest.hexdigest())


if __name__ == "__main__":
    main()
