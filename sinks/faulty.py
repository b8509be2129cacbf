"""Fault drills for the store: an outage on demand, and a crash or an error at the Nth write.

`tracker worker --fault-file PATH` wraps its store in `FaultyStore`, so an operator (or a test) can
make "ClickHouse unavailable" happen on demand and watch the sink retry and then catch up.

`TRACKER_WRITE_FAULT=kill:N` (or `error:N`) makes the process kill itself with SIGKILL (or fail
with a store error) just before its Nth store write, counting every insert of every table. The
crash tests of `tracker ingest` use it to stop a real process at each write of a stream in turn.
`kill-writer:N` kills the store's writer process instead (sinks/writer_process.py; `writer_pid`),
and lets the write go on to find it gone.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import settings
from sinks.base import Batch, Store, StoreError

DRILL_ENV = "TRACKER_WRITE_FAULT"
ACTIONS = ("kill", "error", "kill-writer")
writer_pid: int | None = None  # this process's store writer process, if it has one


class FaultyStore:
    def __init__(self, inner: Store, fault_file: Path) -> None:
        self.inner = inner
        self.fault_file = fault_file
        self.failed_writes = 0

    def write(self, batch: Batch) -> None:
        self._fail_while_down()
        self.inner.write(batch)

    def write_prepared(self, prepared: Any) -> None:
        """A prepared write (sinks/clickhouse_prepared.py) is a write: it fails alike."""
        self._fail_while_down()
        self.inner.write_prepared(prepared)  # type: ignore[attr-defined]  # its prepare made it

    def _fail_while_down(self) -> None:
        if self.fault_file.exists():
            self.failed_writes += 1
            raise StoreError(f"store unavailable (outage drill: {self.fault_file} exists)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class WriteDrill:
    """Counts the store writes of this process and strikes at the `at`th one."""

    action: str  # one of ACTIONS
    at: int
    table: str | None = None  # count only the writes into this table
    writes: int = 0

    def before_write(self, table: str) -> None:
        if self.table is not None and table != self.table:
            return
        self.writes += 1
        if self.writes != self.at:
            return
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.action == "kill-writer" and writer_pid is not None:
            os.kill(writer_pid, signal.SIGKILL)
            return
        raise StoreError(f"store write {self.at} (into {table}) failed: injected by {DRILL_ENV}")


def _from_env(value: str) -> WriteDrill | None:
    if not value:
        return None
    action, _, at = value.partition(":")
    if action not in ACTIONS or not at.isdigit() or int(at) < 1:
        raise StoreError(
            f"{DRILL_ENV}={value!r}: expected kill:N, error:N or kill-writer:N with N >= 1"
        )
    return WriteDrill(action, int(at))


_drill: WriteDrill | None = None
_armed_from_env = False


def before_write(table: str) -> None:
    """Called by every store just before each insert; a no-op unless a drill is armed."""
    global _drill, _armed_from_env
    if not _armed_from_env:
        _armed_from_env = True
        _drill = _drill or _from_env(settings().write_fault)
    if _drill is not None:
        _drill.before_write(table)


@contextmanager
def write_drill(action: str, at: int, table: str | None = None) -> Iterator[WriteDrill]:
    """Arm a drill in this process for the duration of a block (in-process tests)."""
    global _drill
    previous, _drill = _drill, WriteDrill(action, at, table)
    try:
        yield _drill
    finally:
        _drill = previous
