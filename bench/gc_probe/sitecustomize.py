"""A probe of the cyclic collector's pauses in every Python process of a benchmark, put on the
path of the processes it starts (their `sitecustomize`):

    PYTHONPATH=bench/gc_probe GC_PROBE_OUT=/tmp/gc python bench/serve_bench.py --backends kafka

Each process appends to /tmp/gc.<pid> a line per collection longer than 2 ms: when it ended (Unix
time), its generation, its wall milliseconds and what it collected. It found that the latency
benchmark's own client stopped for 83-107 ms in full collections, which counted as the server's
latency (BENCHMARKS.md, "`tracker serve` intake"). Off unless GC_PROBE_OUT is set.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

_OUT = os.environ.get("GC_PROBE_OUT")

if _OUT:
    _started = [0.0]
    _log = open(f"{_OUT}.{os.getpid()}", "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def _timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        took_ms = (time.perf_counter() - _started[0]) * 1000
        if took_ms > 2:
            _log.write(
                f"{time.time():.3f} gen{info['generation']} {took_ms:.1f}ms "
                f"collected={info['collected']}\n"
            )

    gc.callbacks.append(_timed)
