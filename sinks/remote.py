"""The read half of the store port over HTTP, against a running worker's web views.

An embedded chDB path can be opened by one process only: while `tracker worker` holds it,
`tracker status|ledger|deadlines|rejects` read through the worker instead (`streams/web.py`).
Standard library only (urllib), so reading needs no Kafka or Faust import.

Every request carries the worker's token (sinks/worker_token.py), looked up afresh each time (a
restarted worker makes a new one): the one given, else TRACKER_WORKER_TOKEN, else the file the
worker wrote for the store `dsn` (default: this environment's store) and the URL's port, else
the file beside the store the worker says it holds (`RemoteStore.token`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from config.settings import settings
from schemas.ledger import DeadLetter, DeadlineState, LedgerEntry
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import StoreError
from sinks.dsn import canonical, embedded_store_id, mask

# in sinks/dsn.py (light: the status read path asks it too); imported from here as before
from sinks.dsn import held_by_another_process as held_by_another_process
from sinks.worker_token import TOKEN_ENV, read_token_file, token_file

WORKER_URL_ENV = "TRACKER_WORKER_URL"

_ENTRIES = TypeAdapter(list[LedgerEntry])
_DEADLINES = TypeAdapter(list[DeadlineState])
_LETTERS = TypeAdapter(list[DeadLetter])
_POSTERS = TypeAdapter(dict[str, tuple[str, AwareDatetime]])
OPEN_VIEWS = ("store", "health")  # answered without the token (streams/web.py)
POSTERS_CHUNK = 5_000  # event ids per posters request (the worker takes up to 10,000)


def worker_url() -> str:
    return settings().worker_url


class RemoteStore:
    """The reading half of the store port (`sinks.base.StoreReader`), served by a worker."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 30.0,
        *,
        token: str | None = None,
        dsn: str | None = None,
        data_dir: Path | None = None,
    ) -> None:
        """`token`: the worker's; else found at each request (the module's docstring), for the
        worker on store `dsn` with data directory `data_dir` (default: this environment's)."""
        self.url = url.rstrip("/")
        self.shown = mask(self.url)
        self.timeout_s = timeout_s
        self._token = token
        self._dsn = dsn
        self._data_dir = data_dir

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.shown!r})"

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

    def posters(self, event_ids: Sequence[str]) -> dict[str, tuple[str, datetime]]:
        """POSTed in chunks (streams/web.py bounds a request); an answer that is not the
        worker's shape is a StoreError, not a crash."""
        wanted = sorted(set(event_ids))
        found: dict[str, tuple[str, datetime]] = {}
        for start in range(0, len(wanted), POSTERS_CHUNK):
            body = json.dumps(wanted[start : start + POSTERS_CHUNK]).encode()
            try:
                found.update(_POSTERS.validate_json(self._raw("posters", data=body)))
            except ValidationError:
                raise StoreError(f"the worker at {self.shown} answers posters wrongly") from None
        return found

    def totals(self) -> dict[tuple[str, int, str], Decimal]:
        return {(u, int(y), i): Decimal(v) for u, y, i, v in self._get("totals")}

    def event_unit_years(self) -> set[tuple[str, int]]:
        return {(u, int(y)) for u, y in self._get("unit-years")}

    def watermark(self) -> datetime | None:
        mark = self._get("watermark")["watermark"]
        return datetime.fromisoformat(mark) if mark else None

    def as_of(self, at: datetime) -> RemoteAsOf:
        return RemoteAsOf(self, at)

    def status(self, unit: str | None = None, year: int | None = None) -> list[dict[str, Any]]:
        """The contract's status objects as the worker computes them."""
        result: list[dict[str, Any]] = self._get("status", unit=unit, year=year)
        return result

    def progress(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("progress")
        return result

    def identity(self) -> dict[str, str | None]:
        """Which store the worker holds: {"store_id": ..., "dsn": canonical, masked}."""
        data = self._get("store")
        if not isinstance(data, dict) or not isinstance(data.get("dsn"), str):
            raise StoreError(f"the worker at {self.shown} does not say which store it holds")
        store_id = data.get("store_id")
        return {"store_id": store_id if isinstance(store_id, str) else None, "dsn": data["dsn"]}

    def close(self) -> None:
        pass

    # -- plumbing ------------------------------------------------------------------------------

    def token(self) -> str | None:
        """The token to send: given, TRACKER_WORKER_TOKEN, or the file of the worker of store
        `dsn`; failing that (`replay --worker-url` without `--store`), the file beside the
        store the worker says it holds (/tracker/store needs no token): it is keyed by the
        URL's port, and only a reader that may open that store can read it."""
        if self._token is not None:
            return self._token
        env = settings()
        if env.worker_token is not None:
            return env.worker_token.get_secret_value()
        dsn = self._dsn or env.store_dsn()
        found = read_token_file(self.token_path(dsn, env.data_dir))
        if found is None:
            try:
                served = self.identity()["dsn"]
            except StoreError:
                return None
            if served is not None and served != canonical(dsn):
                found = read_token_file(self.token_path(served, env.data_dir))
        return found

    def token_path(self, dsn: str, default_data: Path) -> Path:
        """Where the worker at this URL on store `dsn` wrote its token, if it made one."""
        port = urllib.parse.urlsplit(self.url).port or 80
        data = self._data_dir if self._data_dir is not None else default_data
        return token_file(dsn, data.resolve(), port)

    def _raw(self, path: str, data: bytes | None = None, **params: Any) -> bytes:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.url}/tracker/{path}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, data=data)  # data: a POST
        if data is not None:
            request.add_header("Content-Type", "application/json")
        token = None if path in OPEN_VIEWS else self.token()
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise StoreError(
                    f"what answers at {self.shown} has no /tracker/{path}: not a tracker worker, "
                    "or one from before this version"
                ) from None
            if exc.code == 401:
                where = "none was found" if token is None else "the one sent is not its token"
                raise StoreError(
                    f"the worker at {self.shown} wants its token ({where}): set {TOKEN_ENV}, or "
                    "read as the user of the worker's store (its token file is beside the store "
                    "or in the worker's data directory)"
                ) from None
            try:
                reason = json.loads(exc.read()).get("error") or exc.reason
            except (ValueError, AttributeError):
                reason = exc.reason
            raise StoreError(f"worker at {self.shown}: {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise StoreError(f"cannot reach the worker at {self.shown}: {why}") from None

    def _get(self, path: str, **params: Any) -> Any:
        try:
            return json.loads(self._raw(path, **params))
        except ValueError:
            raise StoreError(f"what answers at {self.shown} does not speak JSON") from None


@dataclass(frozen=True)
class RemoteAsOf:
    """The worker's store as of an instant (sinks/as_of.py): its views with `as_of`."""

    remote: RemoteStore
    at: datetime

    def _read(self, path: str, unit: str | None, year: int | None) -> bytes:
        return self.remote._raw(path, unit=unit, year=year, as_of=self.at.isoformat())

    def ledger(self, unit: str | None = None, year: int | None = None) -> list[LedgerEntry]:
        return _ENTRIES.validate_json(self._read("ledger", unit, year))

    def deadlines(self, unit: str | None = None, year: int | None = None) -> list[DeadlineState]:
        return _DEADLINES.validate_json(self._read("deadlines", unit, year))

    def totals(
        self, unit: str | None = None, year: int | None = None
    ) -> dict[tuple[str, int, str], Decimal]:
        rows = json.loads(self._read("totals", unit, year))
        return {(u, int(y), i): Decimal(v) for u, y, i, v in rows}

    def event_unit_years(
        self, unit: str | None = None, year: int | None = None
    ) -> set[tuple[str, int]]:
        return {(u, int(y)) for u, y in json.loads(self._read("unit-years", unit, year))}


def connect_worker(dsn: str, url: str | None = None) -> RemoteStore:
    """The read views of the worker at `url` (default: $TRACKER_WORKER_URL), once it has shown
    that the store it holds is `dsn`: whatever else answers there is refused, with a message
    saying which store it holds instead."""
    remote = RemoteStore(url or worker_url(), dsn=dsn)
    wanted = canonical(dsn)
    try:
        served = remote.identity()
    except StoreError as exc:
        raise StoreError(
            f"the store {wanted} is held by another process, and no worker that holds it answers "
            f"at {remote.shown} (set {WORKER_URL_ENV}): {exc}"
        ) from None
    if not same_store(dsn, served):
        raise StoreError(
            f"the store {wanted} is held by another process, but the worker at {remote.shown} "
            f"holds another store ({served['dsn']}, id {served['store_id'] or 'unknown'}): set "
            f"{WORKER_URL_ENV} to the web address of the worker that holds {wanted}"
        )
    return remote


def same_store(dsn: str, served: Mapping[str, str | None]) -> bool:
    """Whether what a worker says it holds is the store `dsn`: by the store ids when both are
    known (an embedded store keeps a copy of its id next to it), else by canonical DSN."""
    wanted_id, served_id = embedded_store_id(dsn), served.get("store_id")
    if wanted_id and served_id:
        return wanted_id == served_id
    return served.get("dsn") == canonical(dsn)
