"""A store's whole content as comparable JSON, and a runner that re-runs `tracker` in a fresh
process and dumps the store it wrote (chDB opens one store path per process, so the test process
cannot read the store of a crashed child itself).

    python -m tests.integration.store_dump '[["DSN", ["ingest", ...], ...], ...]'

takes each job in turn (a store and the argument lists to run on it), runs each argument list
through the CLI entry point, in order, and prints one line per run: `store-dump: {"job": its
index, "code": exit code, "dump": the store after that run}`. One process takes many stores one
after the other (chDB closes one directory and opens the next), which saves a crash drill the
start of a process (about a second of CPU) per run.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from engine.status import build_status
from sinks.base import StoreReader

MARK = "store-dump: "
RECEIPT_BOUND = {
    "received_at",
    "signature",
    "digest",
    "chain",
}  # tells the dumps from what `tracker` itself prints


def dump(sink: StoreReader) -> dict[str, Any]:
    """Everything a user can read back; events and dead letters without their receipt time
    (`tracker ingest` stamps its wall clock: a re-run is received later), nor what covers it (an
    event's signature and hashes: engine/chain.py), with their poster."""
    config = sink.load_config()
    status = []
    if config is not None:
        registry, books = config
        status = [
            s.model_dump(mode="json")
            for s in build_status(
                registry, books, sink.totals(), sink.deadlines(), sink.event_unit_years()
            )
        ]
    return {
        "events": [e.model_dump(mode="json", exclude=RECEIPT_BOUND) for e in sink.logged_events()],
        "ledger": [e.model_dump(mode="json") for e in sink.ledger()],
        "deadlines": [d.model_dump(mode="json") for d in sink.deadlines()],
        "letters": sorted([d.origin, d.raw, d.reason, d.posted_by] for d in sink.dead_letters()),
        "status": status,
    }


def lines_covered(got: dict[str, Any], lines: list[str]) -> int:
    """How many lines of a file the logged events of a dump cover (batches are file prefixes)."""
    logged = {e["event_id"] for e in got["events"]}
    return max((i + 1 for i, line in enumerate(lines) if _event_id(line) in logged), default=0)


def _event_id(line: str) -> str | None:
    try:
        return str(json.loads(line)["event_id"])
    except (ValueError, KeyError, TypeError):
        return None


def main(argv: list[str]) -> int:
    from sinks.clickhouse import ClickHouseStore
    from tracker.cli import main as tracker

    for job, (dsn, *runs) in enumerate(json.loads(argv[0])):
        for args in runs:
            code = tracker(args)
            sink = ClickHouseStore(dsn, create=False)  # a reader: the dump writes nothing
            try:
                line = {"job": job, "code": code, "dump": dump(sink)}
                print(MARK + json.dumps(line), flush=True)
            finally:
                sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
