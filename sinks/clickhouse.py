"""The ClickHouse store through clickhouse-connect: embedded chDB (`chdb:///dir`) or a server
(`http(s)://user:pass@host:8123/?database=tracker`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from sinks import clickhouse_docs as docs
from sinks import clickhouse_totals as kept
from sinks.base import Batch, StoreError, UnmadeEvents
from sinks.clickhouse_checkpoint import COLUMNS as CHECKPOINT_COLUMNS
from sinks.clickhouse_checkpoint import PART_COLUMNS, CheckpointTables
from sinks.clickhouse_columns import as_columns
from sinks.clickhouse_config import ConfigTables
from sinks.clickhouse_prepared import PreparedInsert, PreparedWrite, native_block
from sinks.clickhouse_reads import StoreReads
from sinks.clickhouse_rows import (
    DEADLINE_COLS,
    DEADLINE_ROW,
    EVENT_COLS,
    EVENT_ROW,
    HEAD_COLS,
    HEAD_ROW,
    LEDGER_COLS,
    LEDGER_ROW,
    LETTER_COLS,
    LETTER_ROW,
    SEEN_COLS,
    SEEN_ROW,
)
from sinks.clickhouse_schema import ensure_schema
from sinks.connection import connect, require_embedded_store, split_dsn
from sinks.connection import first_line as _first_line
from sinks.dsn import NoStoreError, canonical, chdb_location, store_id_file
from sinks.faulty import before_write
from sinks.store_open import insert_failed, new_store_beside

if TYPE_CHECKING:
    from sinks.clickhouse_as_of import ClickHouseAsOf

# what the readers query: a database without them is not (yet) a tracker store
READ_TABLES = ("meta", "events", "ledger", "deadlines", "dead_letters")
STORE_ID = "store_id"  # meta key: a random id given to the store when it is created

BATCH_COLS = ["partition", "through_seq", "events", "written_at"]
# the inserts of a write and of a checkpoint, as `_insert` is given them (`_prefetch_types`)
WRITTEN = (
    ("dead_letters", LETTER_COLS),
    ("events", EVENT_COLS),
    ("unit_years", kept.UNIT_YEAR_COLS),
    ("ledger", LEDGER_COLS),
    ("ledger_points", kept.POINTS_COLS),
    ("ledger_seen", SEEN_COLS),
    ("deadline_history", DEADLINE_COLS),
    ("deadlines", DEADLINE_COLS),
    ("chain_heads", HEAD_COLS),
    ("batches", BATCH_COLS),
    ("checkpoint_parts", PART_COLUMNS),
    ("checkpoints", CHECKPOINT_COLUMNS),
)

# the inserts a writer process makes of a batch's unmade events, in order (sinks/writer_events.py)
MADE_BY_WRITER = ("events", "unit_years", "chain_heads")

# an insert of a write: (table, columns, rows, then: a second table given the same rows)
Planned = tuple[str, list[str], Sequence[Sequence[Any]], str | None]

__all__ = ["ClickHouseStore", "connect", "split_dsn"]


log = logging.getLogger(__name__)


class ClickHouseStore(ConfigTables, CheckpointTables, StoreReads):
    """`create=False` opens an existing store only (readers): a missing one is a NoStoreError
    and nothing is created, neither directories nor databases nor tables."""

    def __init__(self, dsn: str, *, client: Client | None = None, create: bool = True) -> None:
        self.dsn = dsn
        _, self.db = split_dsn(dsn)
        if client is None and not create:
            require_embedded_store(dsn)
        self.client = client or connect(dsn)
        self._embedded = chdb_location(dsn) is not None and client is None  # see `prepare`
        # what the readers select of the event log and the dead letters (see `_read_old_tables`,
        # sinks/clickhouse_reads.py)
        self._readable = {
            "events": list(EVENT_COLS),
            "dead_letters": list(LETTER_COLS),
            "ledger": list(LEDGER_COLS),
        }
        self._column_types: dict[tuple[str, ...], Sequence[Any]] = {}  # see `_insert`
        self._kept: bool | None = None  # whether the totals are kept (`totals`); None: unasked
        self._docs_due = False  # deadlines written since the documents were last refreshed
        try:
            if create:
                beside = new_store_beside(dsn)
                if beside is not None:
                    log.warning("%s", beside)
                ensure_schema(self)
                self._ensure_store_id()
                kept.keep_totals(self)
                self._kept = True
                docs.keep_docs(self)
                self._prefetch_types()
            else:
                self._require_tables()
                self._read_old_tables()
        except StoreError:
            if client is None:
                self.client.close()
            raise

    def __repr__(self) -> str:
        return f"{type(self).__name__}({canonical(self.dsn)!r})"

    def identity(self) -> dict[str, str | None]:
        """Which store this is: its id and its canonical DSN (password masked). A worker serves
        it, so a reader falling back to the worker can check it is the store it wanted."""
        return {"store_id": self.store_id(), "dsn": canonical(self.dsn)}

    def store_id(self) -> str | None:
        rows = self._query(
            f"SELECT value FROM {self.db}.meta FINAL WHERE key = {{k:String}}", {"k": STORE_ID}
        )
        return str(rows[0][0]) if rows else None

    def _ensure_store_id(self) -> None:
        """Give a new store its id (a store from before ids gets one on its next writer's open),
        and keep the copy next to an embedded store in step."""
        found = self.store_id()
        if found is None:
            self._insert(
                "meta", ["key", "value", "saved_at"], [[STORE_ID, uuid4().hex, datetime.now(UTC)]]
            )
            # read back: of two writers creating the store at once, the later row wins for both
            found = self.store_id()
        location = chdb_location(self.dsn)
        if location is None or found is None:
            return
        copy = store_id_file(*location)
        try:
            if not copy.is_file() or copy.read_text(encoding="ascii").strip() != found:
                copy.write_text(found + "\n", encoding="ascii")
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot write {copy}: {exc}") from None

    def _table_names(self) -> set[str]:
        rows = self._query(
            "SELECT name FROM system.tables WHERE database = {db:String}", {"db": self.db}
        )
        return {str(r[0]) for r in rows}

    def as_of(self, at: datetime) -> ClickHouseAsOf:
        from sinks.clickhouse_as_of import ClickHouseAsOf

        return ClickHouseAsOf.open(self, at)

    def _require_tables(self) -> None:
        where = f"no store at {canonical(self.dsn)}"
        names = {
            str(r[0])
            for r in self._query(
                "SELECT name FROM system.tables WHERE database = {db:String}", {"db": self.db}
            )
        }
        exists = (
            names
            or self._query(
                "SELECT count() FROM system.databases WHERE name = {db:String}", {"db": self.db}
            )[0][0]
        )
        if not exists:
            raise NoStoreError(f"{where}: database {self.db!r} does not exist")
        missing = sorted(set(READ_TABLES) - names)
        if missing:
            raise NoStoreError(
                f"{where}: database {self.db!r} holds no tracker store (no {', '.join(missing)})"
            )

    # -- writing -------------------------------------------------------------------------------

    def write(self, batch: Batch) -> None:
        """Insert a batch in the crash-safe order of `sinks.base`; each table's rows carry ids,
        so a repeated write is absorbed. Each insert is one atomic data part."""
        for table, columns, rows, then in self._planned(batch):
            if table == "events" and batch.unmade is not None:
                self._make_events(batch.unmade)  # before the made ones (sinks/base.py)
            self._insert(table, columns, rows, then=then)
        self._docs_due = self._docs_due or bool(batch.deadlines)

    def _planned(self, batch: Batch) -> list[Planned]:
        """The inserts of a write, in the crash-safe order of `sinks.base`."""
        marks = batch.commit_marks().items()
        now = datetime.now(UTC)
        return [
            ("dead_letters", LETTER_COLS, list(map(LETTER_ROW, batch.dead_letters)), None),
            ("events", EVENT_COLS, list(map(EVENT_ROW, batch.events)), None),
            # each kept table right after what it is derived from (sinks/clickhouse_totals.py)
            ("unit_years", kept.UNIT_YEAR_COLS, kept.unit_year_rows(batch.events), None),
            ("ledger", LEDGER_COLS, list(map(LEDGER_ROW, batch.entries)), None),
            ("ledger_points", kept.POINTS_COLS, kept.points_rows(batch.entries), None),
            ("ledger_seen", SEEN_COLS, list(map(SEEN_ROW, batch.seen)), None),
            ("deadline_history", DEADLINE_COLS, list(map(DEADLINE_ROW, batch.deadlines)), "deadlines"),
            ("chain_heads", HEAD_COLS, list(map(HEAD_ROW, batch.heads)), None),
            ("batches", BATCH_COLS, [[p, seq, batch.logged, now] for p, seq in marks], None),
        ]  # fmt: skip

    def prepare(self, batch: Batch) -> PreparedWrite | None:
        """The batch's write as Native blocks (sinks/clickhouse_prepared.py), made on the
        caller's thread without a call into the store, for `write_prepared`; None where only
        `write` can write it: a server's store (its writes wait on the network, not on this
        interpreter), or unmade events (a writer process's)."""
        if not self._embedded or batch.unmade is not None:
            return None
        inserts = []
        for table, columns, rows, then in self._planned(batch):
            if not rows:
                continue
            block, made_for = b"", ""
            for name in (table,) if then is None else (table, then):
                types = self._column_types.get((name, *columns))
                if types is None:
                    return None
                names = ",".join(t.name for t in types)
                if names != made_for:  # `then`'s table of other types (see `_insert`)
                    block = native_block(f"{self.db}.{name}", columns, types, rows)
                    made_for = names
                inserts.append(PreparedInsert(name, tuple(columns), block))
        return PreparedWrite(tuple(inserts), bool(batch.deadlines))

    def write_prepared(self, prepared: PreparedWrite) -> None:
        """`write` of a prepared batch: its inserts, in order (what is left is chDB's)."""
        self._docs_due = self._docs_due or prepared.deadlines
        for insert in prepared.inserts:
            before_write(insert.table)
            try:
                self.client.raw_insert(
                    f"{self.db}.{insert.table}", insert.columns, insert.block, fmt="Native"
                )
            except ClickHouseError as exc:
                raise insert_failed(insert.table, exc) from None

    @property
    def makes_event_rows(self) -> bool:
        """Whether `write` takes a batch's events unmade (`sinks.base.UnmadeEvents`): with a
        writer process, which makes and stores their rows (sinks/writer_process.py)."""
        return hasattr(self.client, "make_events")

    def _make_events(self, unmade: UnmadeEvents) -> None:
        if not unmade.fields:
            return
        for name in MADE_BY_WRITER:  # the drill counts them as the inserts they are
            before_write(name)
        self.client.make_events(self.db, unmade)  # type: ignore[attr-defined]

    def event_head(self, partition: int) -> str:
        """The chain value the last unmade events of the partition this store made ended at
        (after every write before it is stored)."""
        return self.event_head_later(partition)()

    def event_head_later(self, partition: int) -> Callable[[], str]:
        """`event_head`, asked now and answered when the function it returns is called."""
        return self.client.event_head_later(self.db, partition)  # type: ignore[attr-defined, no-any-return]

    def committed_seq(self, partition: int = 0) -> int:
        rows = self._query(
            f"SELECT max(through_seq) FROM {self.db}.batches WHERE partition = {{p:UInt16}}",
            {"p": partition},
        )
        return int(rows[0][0] or 0)

    # -- reading (the rest: sinks/clickhouse_reads.py) ----------------------------------------

    # the kept totals here, not with the rest: sinks/clickhouse_totals.py reads the whole store
    def totals(self) -> dict[tuple[str, int, str], Decimal]:
        return kept.read_totals(self, self._totals_kept())

    def event_unit_years(self) -> set[tuple[str, int]]:
        return kept.read_unit_years(self, self._totals_kept())

    def _totals_kept(self) -> bool:
        if self._kept is None:  # a reader's: asked once (a store once kept stays so)
            self._kept = kept.is_kept(self)
        return self._kept

    def refresh_docs(self) -> None:
        """On a checkpoint and on close: sinks/clickhouse_docs.py `refresh_due`."""
        self._docs_due = docs.refresh_due(self, self._docs_due)

    def close(self) -> None:
        self.refresh_docs()
        self.client.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _command(self, sql: str) -> None:
        try:
            self.client.command(sql)
        except ClickHouseError as exc:
            raise StoreError(f"store command failed: {_first_line(exc, self.dsn)}") from None

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        return self._answered(partial(self.client.query, sql, parameters=params))

    def _answered(self, answer: Callable[[], Any]) -> list[Sequence[Any]]:
        """The rows of a query's answer (asked already, or asked by `answer`)."""
        try:
            return list(answer().result_rows)
        except ClickHouseError as exc:
            raise StoreError(f"store query failed: {_first_line(exc, self.dsn)}") from None

    def _insert(
        self,
        table: str,
        columns: list[str],
        rows: Sequence[Sequence[Any]],
        *,
        then: str | None = None,
    ) -> None:
        """`rows` inserted into `table`, and then (`then`) into a second table of the same
        columns: the same rows made into the driver's columns once for both (the deadlines)."""
        if not rows:
            return
        held: list[Sequence[Any]] = []
        held_for: Sequence[Any] = ()  # the column types `held` was made for
        try:
            for name in (table,) if then is None else (table, then):
                table = name  # the one named if it fails
                before_write(name)
                types = self._types(name, columns)
                if [t.name for t in types] != [t.name for t in held_for]:
                    held.clear()  # (see below) those of the first table, had they other types
                    # the driver's own list of the columns (cleared below): the caller's rows
                    # are kept
                    held, held_for = as_columns(rows, types), types
                self.client.insert(
                    f"{self.db}.{name}",
                    held,
                    column_names=columns,
                    column_types=types,
                    column_oriented=True,
                )
        except ClickHouseError as exc:
            raise insert_failed(table, exc) from None
        finally:
            # The driver's insert context refers to itself (it keeps a bound method of its own),
            # so only the cyclic collector frees it, and with it the rows: a checkpoint is
            # written with the collector paused, and every part it inserted stayed in memory
            # (its whole text). Emptying the list the context keeps lets them go now.
            held.clear()

    def _prefetch_types(self) -> None:
        """The column types of every insert of a write and a checkpoint, asked at a writer's
        open: by a writer process (sinks/writer_process.py), now and without waiting (asked at
        each table's first insert, the question waited for the inserts queued before it, a
        stall mid-run); by the driver in this process, at once (~10 ms), so that every write,
        the first one too, can be prepared (`prepare`); any other client asks at each table's
        first insert, as before (a server's store is not prepared)."""
        prefetch = getattr(self.client, "prefetch_contexts", None)  # a WriterClient's only
        if prefetch is not None:
            prefetch([(f"{self.db}.{table}", columns) for table, columns in WRITTEN])
        elif self._embedded:
            for table, columns in WRITTEN:
                self._types(table, columns)

    def _types(self, table: str, columns: list[str]) -> Sequence[Any]:
        """The column types of an insert, asked once per table: the client would otherwise
        describe the table before every insert (a query each time). Opening a store adds any
        missing column first (sinks/ddl.py), and a column keeps its type."""
        types = self._column_types.get((table, *columns))
        if types is None:
            name = f"{self.db}.{table}"
            types = self.client.create_insert_context(name, columns).column_types
            self._column_types[(table, *columns)] = types
        return types
