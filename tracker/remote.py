"""The read half of the store port over HTTP, against a running worker's web views.

An embedded chDB path can be opened by one process only: while `tracker worker` holds it,
`tracker status|ledger|deadlines|rejects` read through the worker instead (`streams/web.py`).
Standard library only (urllib), so reading needs no Kafka or Faust import.
"""

from __future__ import annotations

import fcntl
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from schemas.ledger import DeadLetter, DeadlineState, LedgerEntry, LoggedEvent
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import Batch, StoreError

WORKER_URL_ENV = "TRACKER_WORKER_URL"
DEFAULT_WORKER_URL = "http://127.0.0.1:6066"

_ENTRIES = TypeAdapter(list[LedgerEntry])
_DEADLINES = TypeAdapter(list[DeadlineState])
_LETTERS = TypeAdapter(list[DeadLetter])


def worker_url() -> str:
    return os.environ.get(WORKER_URL_ENV) or DEFAULT_WORKER_URL


class RemoteStore:
    """Implements the reading methods of `sinks.base.Sink`; writing raises StoreError."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    # -- reading -------------------------------------------------------------------------------

    def load_config(self) -> tuple[Registry, dict[str, Rulebook]] | None:
        data = self._get("config")
        if data is None:
            return None
        books = {k: Rulebook.model_validate(v) for k, v in data["rulebooks"].items()}
        return Registry.model_validate(data["registry"]), books

    def ledger(self, unit: str | None = None, year: int | None = None) -> list[LedgerEntry]:
        return _ENTRIES.validate_json(self._raw("ledger", unit=unit, year=year))

    def deadlines(self, unit: str | None = None, year: int | None = None) -> list[DeadlineState]:
        return _DEADLINES.validate_json(self._raw("deadlines", unit=unit, year=year))

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        return _LETTERS.validate_json(self._raw("rejects", limit=limit))

    def known_letters(self, letter_ids: Sequence[str]) -> set[str]:
        wanted = set(letter_ids)
        return {d.letter_id for d in self.dead_letters() if d.letter_id in wanted}

    def totals(self) -> dict[tuple[str, int, str], Decimal]:
        return {(u, int(y), i): Decimal(v) for u, y, i, v in self._get("totals")}

    def event_unit_years(self) -> set[tuple[str, int]]:
        return {(u, int(y)) for u, y in self._get("unit-years")}

    def watermark(self) -> datetime | None:
        mark = self._get("watermark")["watermark"]
        return datetime.fromisoformat(mark) if mark else None

    def status(self, unit: str | None = None, year: int | None = None) -> list[dict[str, Any]]:
        """The contract's status objects as the worker computes them."""
        result: list[dict[str, Any]] = self._get("status", unit=unit, year=year)
        return result

    def progress(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("progress")
        return result

    def close(self) -> None:
        pass

    # -- not over HTTP -------------------------------------------------------------------------

    def save_config(self, registry: Registry, rulebooks: Mapping[str, Rulebook]) -> None:
        raise StoreError(f"the store is read-only through the worker at {self.url}")

    def write(self, batch: Batch) -> None:
        raise StoreError(f"the store is read-only through the worker at {self.url}")

    def logged_events(self) -> Iterator[LoggedEvent]:
        raise StoreError(f"the event log is not served by the worker at {self.url}")

    def next_seq(self, partition: int = 0) -> int:
        raise StoreError(f"the event log is not served by the worker at {self.url}")

    # -- plumbing ------------------------------------------------------------------------------

    def _raw(self, path: str, **params: Any) -> bytes:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.url}/tracker/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("error") or exc.reason
            except ValueError:
                reason = exc.reason
            raise StoreError(f"worker at {self.url}: {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise StoreError(f"cannot reach the worker at {self.url}: {why}") from None

    def _get(self, path: str, **params: Any) -> Any:
        return json.loads(self._raw(path, **params))


def chdb_path(dsn: str) -> Path | None:
    """The directory of an embedded chDB DSN (`chdb:///dir?database=x`), else None."""
    parsed = urllib.parse.urlparse(dsn)
    if parsed.scheme != "chdb" or not parsed.path:
        return None
    return Path(parsed.path)


def held_by_another_process(dsn: str) -> bool:
    """True when another process has the chDB directory open (chDB locks `<dir>/status`)."""
    path = chdb_path(dsn)
    if path is None or not (path / "status").is_file():
        return False
    try:
        with open(path / "status", "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False
