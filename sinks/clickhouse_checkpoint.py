"""The checkpoints of a ClickHouse store (sinks/checkpoint.py): a part of `ClickHouseStore`,
kept apart for size."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from engine.clock import local
from sinks.checkpoint import Checkpoint
from sinks.errors import StoreError

COLUMNS = ["partition", "through_seq", "head", "state", "signature", "written_at"]


class CheckpointTables:
    """Mixed into `ClickHouseStore`, which provides the database and the query helpers."""

    db: str

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        raise NotImplementedError

    def _insert(self, table: str, columns: list[str], rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _command(self, sql: str) -> None:
        raise NotImplementedError

    def refresh_docs(self) -> None:
        raise NotImplementedError

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        c = checkpoint
        row = [c.partition, c.through_seq, c.head, c.state, c.signature, c.written_at]
        self._insert("checkpoints", COLUMNS, [row])
        # The partition's other checkpoints go: older ones are only bulk (tens of MB on a big
        # store), and one of a higher seq that did not verify (load reads the highest) would
        # keep every later run replaying the whole log. A delete that fails leaves them: the
        # next load then falls back to a full replay, never trusts them.
        with contextlib.suppress(StoreError):
            self._command(
                f"DELETE FROM {self.db}.checkpoints "
                f"WHERE partition = {int(c.partition)} AND through_seq != {int(c.through_seq)}"
            )
        # a long-running writer (serve, a worker) checkpoints now and then and closes rarely
        self.refresh_docs()

    def load_checkpoint(self, partition: int = 0) -> Checkpoint | None:
        rows = self._query(
            f"SELECT {', '.join(COLUMNS)} FROM {self.db}.checkpoints "
            "WHERE partition = {p:UInt16} ORDER BY through_seq DESC LIMIT 1",
            {"p": partition},
        )
        if not rows:
            return None
        p, seq, head, state, signature, at = rows[0]
        # a String column may come back as bytes when it is not UTF-8: the signature then fails
        if isinstance(state, bytes):
            state = state.decode("utf-8", "replace")
        return Checkpoint(int(p), int(seq), str(head), str(state), str(signature), local(at))
