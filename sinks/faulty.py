"""A store wrapper for outage drills: while a marker file exists, every write fails.

`tracker worker --fault-file PATH` wraps its store in it, so an operator (or a test) can make
"ClickHouse unavailable" happen on demand and watch the sink retry and then catch up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sinks.base import Batch, Sink, StoreError


class FaultySink:
    def __init__(self, inner: Sink, fault_file: Path) -> None:
        self.inner = inner
        self.fault_file = fault_file
        self.failed_writes = 0

    def write(self, batch: Batch) -> None:
        if self.fault_file.exists():
            self.failed_writes += 1
            raise StoreError(f"store unavailable (outage drill: {self.fault_file} exists)")
        self.inner.write(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
