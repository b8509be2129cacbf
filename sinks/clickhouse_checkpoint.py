"""The checkpoints of a ClickHouse store (sinks/checkpoint.py): a part of `ClickHouseStore`,
kept apart for size."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from engine.clock import local
from sinks.checkpoint import Checkpoint, write_of
from sinks.connection import first_line
from sinks.errors import StoreError

COLUMNS = ["partition", "through_seq", "head", "state", "signature", "written_at"]
PART_COLUMNS = ["partition", "through_seq", "write", "part", "text"]
PARTS_PER_INSERT = 8  # ~8 MB an insert: few inserts, and little held at once


class CheckpointTables:
    """Mixed into `ClickHouseStore`, which provides the database and the query helpers."""

    db: str
    client: Client

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        raise NotImplementedError

    def _insert(self, table: str, columns: list[str], rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _command(self, sql: str) -> None:
        raise NotImplementedError

    def refresh_docs(self) -> None:
        raise NotImplementedError

    def save_checkpoint_parts(
        self, partition: int, through_seq: int, write: str, parts: Iterable[bytes]
    ) -> None:
        numbered = enumerate(parts)
        while rows := [
            [partition, through_seq, write, n, text]
            for n, text in itertools.islice(numbered, PARTS_PER_INSERT)
        ]:
            self._insert("checkpoint_parts", PART_COLUMNS, rows)

    def load_checkpoint_parts(self, partition: int, through_seq: int, write: str) -> list[bytes]:
        sql = (
            f"SELECT text FROM {self.db}.checkpoint_parts FINAL WHERE partition = {{p:UInt16}} "
            "AND through_seq = {s:UInt64} AND write = {w:String} ORDER BY part"
        )
        params = {"p": partition, "s": through_seq, "w": write}
        try:
            # as bytes: as text each part would be held twice over (2 bytes a Chinese character)
            found = self.client.query(sql, parameters=params, column_formats={"text": "bytes"})
            rows = found.result_rows
        except ClickHouseError as exc:
            raise StoreError(f"store query failed: {first_line(exc)}") from None
        return [t if isinstance(t, bytes) else str(t).encode("utf-8") for (t,) in rows]

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
            # and the parts of every other write (`write_of` is hex or None: safe in the SQL)
            self._command(
                f"DELETE FROM {self.db}.checkpoint_parts WHERE partition = {int(c.partition)} "
                f"AND NOT (through_seq = {int(c.through_seq)} AND write = '{write_of(c) or ''}')"
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
