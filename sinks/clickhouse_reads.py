"""What the readers of a ClickHouse store ask of it: the event log, the ledger, the deadlines,
the dead letters and the chain heads, selected as this store can read them (a store from before
envelopes or chains, opened by a reader, lacks their columns). A part of `ClickHouseStore`, kept
apart for size."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import partial
from operator import itemgetter
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from engine.clock import local
from schemas.ledger import ChainHead, DeadLetter, DeadlineState, LedgerEntry, LoggedEvent
from sinks.base import StoreError
from sinks.clickhouse_bind import string_array
from sinks.clickhouse_rows import (
    DEADLINE_COLS,
    HEAD_COLS,
    LETTER_COLS,
    OLD_DEFAULTS,
    deadline_state,
    ledger_entry,
    logged_event_row,
    unit_year_filter,
)
from sinks.connection import first_line

T = TypeVar("T")
_LOOKUP_CHUNK = 10_000  # ids per IN (...) lookup: bounded query size


class StoreReads:
    """Mixed into `ClickHouseStore`, which provides the database, the query helpers and the
    select lists it starts from (`_readable`, adjusted here for an old store)."""

    db: str
    dsn: str
    client: Client
    _readable: dict[str, list[str]]

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        raise NotImplementedError

    def _answered(self, answer: Callable[[], Any]) -> list[Sequence[Any]]:
        raise NotImplementedError

    def _read_old_tables(self) -> None:
        """A reader changes nothing, so a store from before envelopes that no writer has opened
        since lacks their columns (a writer adds them, sinks/ddl.py): read its rows as the
        columns' defaults say, unenveloped."""
        rows = self._query(
            "SELECT table, name FROM system.columns WHERE database = {db:String} "
            "AND table IN ('events', 'dead_letters', 'ledger')",
            {"db": self.db},
        )
        present = {(str(t), str(n)) for t, n in rows}
        for table, columns in self._readable.items():
            self._readable[table] = [
                f"{OLD_DEFAULTS[c]} AS {c}"
                if c in OLD_DEFAULTS and (table, c) not in present
                else c
                for c in columns
            ]

    def _columns(self, table: str, *names: str) -> str:
        """The select list of `names` (default: every field) of the event log or the dead
        letters, as this store can read them."""
        columns = self._readable[table]
        if names:
            columns = [c for c in columns if c.rsplit(" ", 1)[-1] in names]
        return ", ".join(columns)

    def logged_events(self) -> Iterator[LoggedEvent]:
        """Streamed (`_streamed`)."""
        sql = (
            f"SELECT {self._columns('events')} FROM {self.db}.events FINAL ORDER BY partition, seq"
        )
        return self._streamed(sql, logged_event_row)

    def logged_ids(self) -> Iterator[str]:
        """Streamed (`_streamed`). Without FINAL: a row written twice and not merged yet gives
        its id twice, which the callers' sets absorb."""
        return self._streamed(f"SELECT event_id FROM {self.db}.events", itemgetter(0))

    def _streamed(self, sql: str, make: Callable[[Sequence[Any]], T]) -> Iterator[T]:
        """The query's rows, each made into `make(row)`, as they come: no other query or insert
        can run on this client until the iterator is consumed or closed."""
        try:
            with self.client.query_rows_stream(sql) as stream:
                for row in stream:
                    yield make(row)
        except ClickHouseError as exc:
            raise StoreError(f"store query failed: {first_line(exc, self.dsn)}") from None

    def known_events(self, event_ids: Sequence[str]) -> set[str]:
        return self.known_events_later(event_ids)()

    def known_events_later(self, event_ids: Sequence[str]) -> Callable[[], set[str]]:
        # through a writer process: asked now, answered beside the caller's work (the inserts
        # sent before it first); through the driver itself: asked when the answer is wanted
        later = getattr(self.client, "query_later", None)
        sql = f"SELECT DISTINCT event_id FROM {self.db}.events WHERE event_id IN {{ids:Array(String)}}"
        answers = []
        for start in range(0, len(event_ids), _LOOKUP_CHUNK):
            # the driver's text of the ids, made in C (sinks/clickhouse_bind.py)
            params = {"ids": string_array(event_ids[start : start + _LOOKUP_CHUNK])}
            answers.append(
                partial(self._query, sql, params)
                if later is None
                else partial(self._answered, later(sql, params))
            )

        def found() -> set[str]:
            ids: set[str] = set()
            for answer in answers:
                ids.update(str(r[0]) for r in answer())
            return ids

        return found

    def posters(self, event_ids: Sequence[str]) -> dict[str, tuple[str, datetime]]:
        wanted = sorted(set(event_ids))
        found: dict[str, tuple[str, datetime]] = {}
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            rows = self._query(
                f"SELECT {self._columns('events', 'event_id', 'posted_by', 'received_at')} "
                f"FROM {self.db}.events FINAL "
                "WHERE event_id IN {ids:Array(String)}",
                {"ids": wanted[start : start + _LOOKUP_CHUNK]},
            )
            found.update((str(i), (str(p), local(r))) for i, p, r in rows)
        return found

    def logged_events_after(self, partition: int, seq: int, limit: int) -> list[LoggedEvent]:
        rows = self._query(
            f"SELECT {self._columns('events')} FROM {self.db}.events FINAL "
            "WHERE partition = {p:UInt16} AND seq > {s:UInt64} ORDER BY seq LIMIT {n:UInt64}",
            {"p": partition, "s": seq, "n": limit},
        )
        return [logged_event_row(row) for row in rows]

    def chain_heads(self) -> list[ChainHead]:
        if not self._has_table("chain_heads"):
            return []
        rows = self._query(
            f"SELECT {', '.join(HEAD_COLS)} FROM {self.db}.chain_heads FINAL "
            "ORDER BY chain, key, through_seq"
        )
        heads = []
        for row in rows:
            values = dict(zip(HEAD_COLS, row, strict=True))
            values.update(
                through_seq=int(values["through_seq"]), signed_at=local(values["signed_at"])
            )
            heads.append(ChainHead.model_construct(**values))
        return heads

    def predates_chains(self) -> bool:
        for table in ("events", "ledger"):
            if "'' AS chain" in self._columns(table, "chain"):
                rows = self._query(f"SELECT count() FROM {self.db}.{table}")
            else:
                rows = self._query(f"SELECT count() FROM {self.db}.{table} WHERE chain = ''")
            if int(rows[0][0]):
                return True
        return False

    def _has_table(self, name: str) -> bool:
        rows = self._query(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": self.db, "t": name},
        )
        return bool(rows[0][0])

    def next_seq(self, partition: int = 0) -> int:
        rows = self._query(
            f"SELECT max(seq) FROM {self.db}.events WHERE partition = {{p:UInt16}}",
            {"p": partition},
        )
        return int(rows[0][0] or 0) + 1

    def ledger(self, unit: str | None = None, year: int | None = None) -> list[LedgerEntry]:
        columns = self._columns("ledger").split(", ")
        rows = self._select("ledger", columns, unit, year, order="unit, year, seq")
        return [ledger_entry({k.rsplit(" ", 1)[-1]: v for k, v in row.items()}) for row in rows]

    def deadlines(self, unit: str | None = None, year: int | None = None) -> list[DeadlineState]:
        return [
            deadline_state(v)
            for v in self._select("deadlines", DEADLINE_COLS, unit, year, order="unit, kind, ref")
        ]

    def _select(
        self, table: str, columns: list[str], unit: str | None, year: int | None, *, order: str
    ) -> list[dict[str, Any]]:
        """Deduplicated rows (FINAL) of a unit/year-filtered table, as column -> value dicts."""
        where, params = unit_year_filter(unit, year)
        sql = f"SELECT {', '.join(columns)} FROM {self.db}.{table} FINAL {where} ORDER BY {order}"
        return [dict(zip(columns, row, strict=True)) for row in self._query(sql, params)]

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        sql = (
            f"SELECT {self._columns('dead_letters')} FROM {self.db}.dead_letters FINAL "
            "ORDER BY received_at DESC, letter_id DESC"
        )
        if limit:
            sql += f" LIMIT {int(limit)}"
        letters = []
        for row in self._query(sql):
            values = dict(zip(LETTER_COLS, row, strict=True))
            values["received_at"] = local(values["received_at"])
            letters.append(DeadLetter.model_construct(**values))
        return letters[::-1]

    def known_letters(self, letter_ids: Sequence[str]) -> set[str]:
        if not letter_ids:
            return set()
        rows = self._query(
            f"SELECT letter_id FROM {self.db}.dead_letters WHERE letter_id IN {{ids:Array(String)}}",
            {"ids": list(letter_ids)},
        )
        return {r[0] for r in rows}

    def watermark(self) -> datetime | None:
        rows = self._query(f"SELECT count(), max(at) FROM {self.db}.events")
        return local(rows[0][1]) if rows and rows[0][0] else None
