"""`tracker status` from a ClickHouse store (issue 11 item 2, issue 12 item 4): a few aggregate
queries, read as tuples, into the contract's status objects, without a model per row.

The general path (sinks/views.py -> engine/status.py) builds a pydantic object per deadline; on
a 1M-event store that is 136k objects and 4 s for every unit. Here the store gives the points
deducted per unit, year and indicator and the unit-years with events (latest: from the totals a
writer keeps, sinks/clickhouse_totals.py, a few thousand rows; from the ledger and the event log
themselves in a store no writer of this version has opened yet, and as of an instant), writes
each instant as `engine.clock.iso` does and orders the deadlines as `build_status` shows them;
Python only groups what it reads. For `--json` the store
even writes each unit-year's deadlines as their JSON text (`json_text`), so that 136k deadlines
cross into Python as ~400 strings; `documents` gives the objects themselves, for the tables.
Both equal the general path's output byte for byte (tests/integration/test_status_fast.py).

Imports only light sinks modules, and for an embedded store not even the driver: chDB's own API
reads it (sinks/rows.py; tests/unit/test_cli_start.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sinks import clickhouse_docs as docs
from sinks.clickhouse_sql import (
    AT,
    HISTORY_KEY,
    HISTORY_TABLES,
    KEPT,
    STATE_SHOWN,
    TOTALS_KEY,
    kept_totals,
    kept_unit_years,
    millis,
    shown_entries,
    unit_year_filter,
)
from sinks.errors import HISTORY_MISSING, HistoryMissingError, StoreError
from sinks.rows import QueryError, Rows, open_rows
from sinks.status_config import StatusConfig, format_points, read_config
from sinks.store_open import require_embedded_store, split_dsn

ZERO = Decimal(0)
Document = dict[str, Any]  # one object of `tracker status --json`
_DUE, _OWN_DUE, _ORDER = docs.DUE, docs.OWN_DUE, docs.ORDER

# the column kinds each query must give (`StatusQuery._rows`)
_TOTALS = "text year text points"
_DEADLINES = "text year text text text text?"
_UNIT_YEARS = "text year"
_GROUPS = "text year count count text"
_COUNTS = "text year count count count count"
_DOCS = "text year text?"
_KINDS = {
    "text": ("String", "LowCardinality(String)"),
    "text?": ("String", "Nullable(String)"),
    "year": ("UInt8", "UInt16", "UInt32", "Int16", "Int32"),
    "count": ("UInt64",),
}


class NoConfigError(StoreError):
    """The store holds no recorded registry: nothing was ingested into it yet."""


class StatusQuery:
    """An open store, for status only: no table checks up front (they cost five queries of the
    system tables); a query that fails is explained afterwards by the full store's checks."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        _, self.db = split_dsn(dsn)
        require_embedded_store(dsn)  # on disk: a reader creates nothing
        # chDB's own API for an embedded store, the driver for a server (sinks/rows.py)
        self.rows: Rows = open_rows(dsn)
        # whether a writer keeps the totals (sinks/clickhouse_totals.py) and the deadline
        # documents (sinks/clickhouse_docs.py): known from `config`
        self.kept = False
        self.docs = False

    def close(self) -> None:
        self.rows.close()

    def config(self, *, as_of: bool) -> StatusConfig:
        rows = self._rows(f"SELECT key, value FROM {self.db}.meta FINAL", None, types="text text")
        meta = dict(rows)
        self.kept = meta.get(TOTALS_KEY) == KEPT
        self.docs = meta.get(docs.DOCS_KEY) == KEPT
        if "registry" not in meta:
            raise NoConfigError("the store holds no data yet: run `tracker ingest` first")
        if as_of and meta.get(HISTORY_KEY) == "missing":
            raise HistoryMissingError(HISTORY_MISSING)
        return read_config(meta)

    def documents(
        self, config: StatusConfig, unit: str | None, year: int | None, at: datetime | None
    ) -> list[Document]:
        """The status objects, as `UnitYearStatus.model_dump(mode="json")` gives them."""
        where, params = self._filter(unit, year, at)
        rows = self._rows(
            f"SELECT unit, year, ref, {_DUE}, status, {_OWN_DUE} "
            f"FROM ({self._deadlines(where, at)}) ORDER BY unit, year, {_ORDER}",
            params,
            types=_DEADLINES,
        )
        unknown = {r[4] for r in rows} - set(docs.STATUSES)
        if unknown:
            raise StoreError(f"the store's deadlines hold an unknown status {min(unknown)!r:.40}")
        views: dict[tuple[str, int], list[Document]] = {}
        for u, y, ref, due, status, own in rows:
            view = {"ref": ref, "due": due, "status": status}
            if own is not None:  # schemas.ledger.DeadlineView shows it only then
                view["notice_due"] = own
            views.setdefault((u, y), []).append(view)
        return [
            {**doc, "deadlines": views.get((doc["unit"], doc["year"]), [])}
            for doc in self._skeleton(config, where, params, at, set(views), unit, year)
        ]

    def summaries(
        self, config: StatusConfig, unit: str | None, year: int | None, at: datetime | None
    ) -> list[tuple[Document, int, int, int]]:
        """What the every-unit table shows: each status object without its deadlines, with the
        counts of its open, overdue and all deadlines (counted by the store, not read)."""
        where, params = self._filter(unit, year, at)
        counts = self._rows(
            "SELECT unit, year, countIf(status = 'open'), countIf(status = 'overdue'), "
            f"count(), countIf({docs.BAD_STATUS}) FROM ({self._deadlines(where, at)}) "
            "GROUP BY unit, year",
            params,
            types=_COUNTS,
        )
        if any(bad for *_, bad in counts):
            self.documents(config, unit, year, at)  # raises, naming the status
        found = {(u, y): (opened, overdue, total) for u, y, opened, overdue, total, _ in counts}
        return [
            (doc, *found.get((doc["unit"], doc["year"]), (0, 0, 0)))
            for doc in self._skeleton(config, where, params, at, set(found), unit, year)
        ]

    def json_text(
        self, config: StatusConfig, unit: str | None, year: int | None, at: datetime | None
    ) -> str:
        """`json.dumps(documents, ensure_ascii=False)`, with each unit-year's deadlines written
        by the store."""
        where, params = self._filter(unit, year, at)
        texts: dict[tuple[str, int], str] = {}
        # the deadlines to write here: all that `where` picks, or the unit-years without a
        # usable document (sinks/clickhouse_docs.py), or none
        chosen: str | None = where
        chosen_params = params
        if at is None and self.docs:
            made = self._rows(docs.usable_docs(self.db, where), params, types=_DOCS)
            texts = {(u, y): t for u, y, t in made if t is not None}
            stale = [(u, y) for u, y, t in made if t is None]
            chosen = "WHERE (unit, year) IN {stale:Array(Tuple(String, UInt16))}" if stale else None
            chosen_params = {"stale": stale}
        if chosen is not None:
            source = (
                f"SELECT unit, year, kind, ref, noticed_at, status, {_DUE} AS due_text, "
                f"{_OWN_DUE} AS own_due FROM ({self._deadlines(chosen, at)})"
            )
            groups = self._rows(
                f"SELECT unit, year, countIf({docs.BAD_STATUS}), countIf({docs.ODD_REF}), "
                f"{docs.GROUP_TEXT} FROM ({source}) GROUP BY unit, year",
                chosen_params,
                types=_GROUPS,
            )
            if any(bad for _, _, bad, _, _ in groups):
                self.documents(config, unit, year, at)  # raises, naming the status
            if any(odd for _, _, _, odd, _ in groups):  # a ref json.dumps escapes: let it
                return json.dumps(self.documents(config, unit, year, at), ensure_ascii=False)
            texts.update(((u, y), text) for u, y, _, _, text in groups)
        text = _ENCODE
        return "[{}]".format(
            ", ".join(
                f'{{"unit": {text(doc["unit"])}, "year": {doc["year"]}, '
                f'"rulebook": {text(doc["rulebook"])}, "deducted": {text(doc["deducted"])}, '
                f'"indicators": {text(doc["indicators"])}, '
                f'"deadlines": [{texts.get((doc["unit"], doc["year"]), "")}]}}'
                for doc in self._skeleton(config, where, params, at, set(texts), unit, year)
            )
        )

    # -- the queries -----------------------------------------------------------------------

    def _filter(
        self, unit: str | None, year: int | None, at: datetime | None
    ) -> tuple[str, dict[str, Any]]:
        where, params = unit_year_filter(unit, year)
        if at is not None:
            params["t"] = millis(at)
        return where, params

    def _deadlines(self, where: str, at: datetime | None) -> str:
        """Each notice's state shown (the latest, or the latest shown at {t})."""
        if at is None:
            return f"SELECT * FROM {self.db}.deadlines FINAL {where}"
        return (
            f"SELECT * FROM {self.db}.deadline_history {where or 'WHERE 1'} AND {STATE_SHOWN} "
            "ORDER BY unit, kind, ref, version DESC LIMIT 1 BY unit, kind, ref"
        )

    def _skeleton(
        self,
        config: StatusConfig,
        where: str,
        params: dict[str, Any],
        at: datetime | None,
        deadline_keys: set[tuple[str, int]],
        unit: str | None,
        year: int | None,
    ) -> Iterator[Document]:
        """engine/status.py `build_status` without the deadlines: one object per unit and year
        with an assessment, an accepted event or a deadline, sorted by unit and year."""
        if at is None:
            totals = self._rows(
                kept_totals(self.db, where)
                if self.kept
                else f"SELECT unit, year, indicator, sum(applied) FROM {self.db}.ledger FINAL "
                f"{where} GROUP BY unit, year, indicator",
                params,
                types=_TOTALS,
            )
            shown_at = ""
        else:
            shown = shown_entries(
                self.db,
                "l.entry_id AS id, l.unit AS u, l.year AS y, l.indicator AS i, "
                "l.applied AS applied, l.reverses AS reverses",
                where,
            )
            # a reversal counts only with the entry it reverses (sinks/as_of.py `cut_ledger`)
            totals = self._rows(
                f"WITH shown AS ({shown}) SELECT u, y, i, sum(applied) FROM shown "
                "WHERE reverses IS NULL OR reverses IN (SELECT id FROM shown) GROUP BY u, y, i",
                params,
                types=_TOTALS,
            )
            shown_at = f" AND at <= {AT}"
        years = self._rows(
            kept_unit_years(self.db, where, as_of=at is not None)
            if self.kept
            # GROUP BY, not DISTINCT: the same pairs, a quarter less CPU over 1M events
            else f"SELECT unit, year FROM {self.db}.events {where or 'WHERE 1'} "
            f"AND unit != ''{shown_at} GROUP BY unit, year",
            params,
            types=_UNIT_YEARS,
        )
        sums = {(u, y, i): s.normalize() if s else ZERO for u, y, i, s in totals}
        keys = {(u, y) for u, y in years} | deadline_keys
        for unit_id, unit_tier in config.tiers.items():
            keys.update((unit_id, y) for y, t, _ in config.assessments if t == unit_tier)
        for unit_id, yr in sorted(keys):
            if (unit is not None and unit_id != unit) or (year is not None and yr != year):
                continue
            tier = config.tiers.get(unit_id)
            book_id = config.rulebook_for(tier, yr) if tier is not None else None
            book = config.books.get(book_id) if book_id is not None else None
            indicators, deducted = [], ZERO
            for ind_id, name, top in book or ():
                lost = sums.get((unit_id, yr, ind_id), ZERO)
                deducted += lost
                indicators.append(
                    {
                        "id": ind_id,
                        "name": name,
                        "max": format_points(top),
                        "deducted": format_points(lost),
                        "remaining": format_points(top - lost),
                    }
                )
            yield {
                "unit": unit_id,
                "year": yr,
                "rulebook": book_id if book is not None else None,
                "deducted": format_points(deducted),
                "indicators": indicators,
            }

    def _rows(self, sql: str, params: dict[str, Any] | None, *, types: str) -> list[Any]:
        """The rows of a query, in the column kinds `types` names. The kinds are checked once
        per query, from the result's own column types, not per value: either adapter gives a
        String column as str, a UInt16 as int, a Decimal as Decimal (sinks/rows.py)."""
        try:
            got, rows = self.rows.query(sql, params)
        except QueryError as exc:
            self._explain()
            raise StoreError(f"store query failed: {exc}") from None
        if not rows:
            return rows  # (an empty result may come without its column types)
        kinds = types.split()
        if len(got) != len(kinds) or not all(map(_fits, got, kinds)):
            raise StoreError(
                f"the store's columns have types this version cannot read: {', '.join(got)}"
            )
        return rows

    def _explain(self) -> None:
        """Raise what the full store's open says of this database (no store, no tracker
        tables), or the as-of refusal when the history tables are missing. Through the driver
        (a failed query only): in this process it shares the embedded engine already open."""
        from sinks.clickhouse import ClickHouseStore
        from sinks.connection import connect

        client = connect(self.dsn)
        try:
            ClickHouseStore(self.dsn, client=client, create=False)
            rows = client.query(
                "SELECT name FROM system.tables WHERE database = {db:String}",
                parameters={"db": self.db},
            ).result_rows
        finally:
            client.close()
        if not set(HISTORY_TABLES) <= {str(r[0]) for r in rows}:
            raise HistoryMissingError(HISTORY_MISSING)


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # what json.dumps(..., ensure_ascii=False) is


def _fits(got: str, kind: str) -> bool:
    if kind == "points":
        return got.startswith("Decimal(")
    return got in _KINDS[kind]
