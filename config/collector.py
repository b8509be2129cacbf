"""The cyclic collector's tuning of a tracker process (the CLI's commands, and `tracker ingest`'s
writer process, sinks/writer_child.py)."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """The engine allocates a few small objects per event; with the default gen-0 threshold (700)
    the cyclic collector runs every few dozen events and costs ~20% of ingest. Long-lived state is
    frozen out of the young generations, and collections happen every 100k allocations instead."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
