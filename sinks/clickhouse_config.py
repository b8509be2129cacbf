"""The recorded configuration of a ClickHouse store: the registry and rulebooks every reader
judges with (table `meta`), their flattened copies for the dashboards (`units`, `indicators`,
`items`), the trail of registry changes, and which writer owns the event log
(sinks/event_log.py). A part of `ClickHouseStore`, kept apart for size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from engine.clock import local
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import RegistryChange, StoreError, registry_hash
from sinks.event_log import EventLogWriter

EVENT_LOG_WRITER = "event_log_writer"  # meta key: sinks/event_log.py


class ConfigTables:
    """Mixed into `ClickHouseStore`, which provides the database and the query helpers."""

    db: str

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        raise NotImplementedError

    def _insert(self, table: str, columns: list[str], rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def save_config(self, registry: Registry, rulebooks: Mapping[str, Rulebook]) -> None:
        now = datetime.now(UTC)
        used = {a.rulebook for a in registry.assessments}
        self._record_registry_change(registry.model_dump_json(), now)
        meta = [["registry", registry.model_dump_json(), now]] + [
            [f"rulebook:{b.id}", b.model_dump_json(), now]
            for b in rulebooks.values()
            if b.id in used
        ]
        self._insert("meta", ["key", "value", "saved_at"], meta)
        self._insert(
            "units",
            ["id", "name", "tier", "parent", "root", "saved_at"],
            [[u.id, u.name, u.tier, u.parent, registry.root(u.id), now] for u in registry.units],
        )
        indicators, items = [], []
        for book in rulebooks.values():
            if book.id not in used:
                continue
            for ind in book.indicators:
                indicators.append(
                    [book.id, book.year, book.tier, ind.id, ind.name, ind.max_points, now]
                )
                items += [
                    [book.id, ind.id, i.number, i.clause, i.cap_points, now] for i in ind.items
                ]
        self._insert(
            "indicators",
            ["rulebook", "year", "tier", "indicator", "name", "max_points", "saved_at"],
            indicators,
        )
        self._insert(
            "items", ["rulebook", "indicator", "item", "clause", "cap_points", "saved_at"], items
        )

    def _record_registry_change(self, new: str, now: datetime) -> None:
        """Before the registry itself is saved: a crash in between leaves the change recorded,
        and the retry, finding it as the last row, does not record it twice."""
        rows = self._query(f"SELECT value FROM {self.db}.meta FINAL WHERE key = 'registry'")
        old_hash = registry_hash(str(rows[0][0])) if rows else ""
        new_hash = registry_hash(new)
        if old_hash == new_hash:
            return
        last = self._query(
            f"SELECT old_hash, new_hash FROM {self.db}.registry_changes "
            "ORDER BY changed_at DESC LIMIT 1"
        )
        if last and (last[0][0], last[0][1]) == (old_hash, new_hash):
            return
        self._insert(
            "registry_changes",
            ["changed_at", "old_hash", "new_hash", "registry"],
            [[now, old_hash, new_hash, new]],
        )

    def event_log_writer(self) -> EventLogWriter | None:
        rows = self._query(
            f"SELECT value FROM {self.db}.meta FINAL WHERE key = {{k:String}}",
            {"k": EVENT_LOG_WRITER},
        )
        return EventLogWriter.from_json(str(rows[0][0])) if rows else None

    def record_event_log_writer(self, writer: EventLogWriter) -> None:
        self._insert(
            "meta",
            ["key", "value", "saved_at"],
            [[EVENT_LOG_WRITER, writer.to_json(), datetime.now(UTC)]],
        )

    def logged_through(self) -> dict[int, int]:
        rows = self._query(f"SELECT partition, max(seq) FROM {self.db}.events GROUP BY partition")
        return {int(r[0]): int(r[1]) for r in rows}

    def registry_changes(self) -> list[RegistryChange]:
        rows = self._query(
            f"SELECT changed_at, old_hash, new_hash, registry FROM {self.db}.registry_changes "
            "ORDER BY changed_at"
        )
        return [RegistryChange(local(t), str(o), str(n), str(r)) for t, o, n, r in rows]

    def load_config(self) -> tuple[Registry, dict[str, Rulebook]] | None:
        rows = self._query(f"SELECT key, value FROM {self.db}.meta FINAL")
        values: dict[str, str] = {str(k): str(v) for k, v in rows}
        if "registry" not in values:
            return None
        # the store's own rows are input like any other: a row this version cannot read (a store
        # written under contract v1, or an edited row) is a clear error, not a crash
        key = "registry"
        try:
            registry = Registry.model_validate_json(values["registry"])
            books = {}
            for key, value in values.items():
                if key.startswith("rulebook:"):
                    books[key.split(":", 1)[1]] = Rulebook.model_validate_json(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise StoreError(
                f"the store's recorded {key} cannot be read by this version ({where}: "
                f"{first['msg']}); a store written under contract v1 must be rebuilt: ingest its "
                "events into a new store"
            ) from None
        return registry, books
