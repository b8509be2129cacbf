"""Store DSNs as people see them: secrets masked, and one canonical spelling per store.

`mask` is the one helper for every message, log line and repr that can include a DSN: a
password must never reach a terminal, a log file or a bug report.
"""

from __future__ import annotations

import fcntl
import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from sinks.errors import StoreError

MASK = "***"
DEFAULT_DATABASE = "tracker"
# user:PASSWORD@ in any URL inside a text (the password ends at the last @ before the host)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)(?P<secret>[^\s/]*)@")
# password=..., pass=..., token=... in a query string or a key=value list
_SECRET_PARAM = re.compile(
    r"(?P<head>\b(?:password|passwd|pass|pwd|secret|token|access_token)=)(?P<secret>[^&\s'\"]*)",
    re.IGNORECASE,
)


class NoStoreError(StoreError):
    """A reader was pointed at a place that holds no store; nothing was created there."""


class StoreHeldError(StoreError):
    """The embedded store's directory is open in another process (chDB allows one)."""


def mask(text: str, dsn: str | None = None) -> str:
    """`text` with URL passwords and secret parameters replaced by ***; given the `dsn` the text
    is about, also that DSN's password wherever it appears literally (a driver can echo it)."""
    out = _USERINFO.sub(lambda m: m["head"] + MASK + "@", text)
    out = _SECRET_PARAM.sub(lambda m: m["head"] + (MASK if m["secret"] else ""), out)
    for secret in _secrets(dsn) if dsn else ():
        out = out.replace(secret, MASK)
    return out


def _secrets(dsn: str) -> set[str]:
    found: set[str] = set()
    try:
        parts = urlsplit(dsn)
        if parts.password:
            found |= {parts.password, unquote(parts.password)}
        found |= {v for k, v in parse_qsl(parts.query) if _SECRET_PARAM.match(f"{k}=")}
    except ValueError:
        pass
    # a one-character "secret" would mask half the message; such a password is its own problem
    return {s for s in found if len(s) >= 3}


def chdb_location(dsn: str) -> tuple[Path, str] | None:
    """(directory, database) of an embedded chDB DSN `chdb:///DIR?database=NAME`; None for a
    server DSN or an in-memory chDB (`chdb://memory`, as clickhouse-connect reads the netloc)."""
    parts = urlsplit(dsn)
    if parts.scheme != "chdb" or parts.netloc or not parts.path:
        return None
    return Path(unquote(parts.path)), _database(parts.query)


def _database(query: str) -> str:
    return dict(parse_qsl(query)).get("database") or DEFAULT_DATABASE


def canonical(dsn: str) -> str:
    """One spelling per store, secrets masked: a chDB directory resolved (symlinks, `..`), a
    server with its default port, lower-case host and the database named; other query
    parameters (driver settings) are left out, they do not change which store it is."""
    location = chdb_location(dsn)
    if location is not None:
        path, database = location
        return f"chdb://{path.resolve()}?database={database}"
    parts = urlsplit(dsn)
    database = _database(parts.query)
    if parts.scheme in ("http", "https") and parts.hostname:
        port = parts.port or (8443 if parts.scheme == "https" else 8123)
        user = f"{unquote(parts.username)}@" if parts.username else ""
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        query = urlencode({"database": database})
        return urlunsplit((parts.scheme, f"{user}{host}:{port}", "/", query, ""))
    return mask(dsn)


def store_id_file(path: Path, database: str) -> Path:
    """Next to an embedded store, its id (also in its meta table), readable without opening the
    store: while a worker holds the directory, a reader checks the worker serves this store."""
    return path / f"tracker-{database}.store-id"


def embedded_store_id(dsn: str) -> str | None:
    location = chdb_location(dsn)
    if location is None:
        return None
    try:
        text = store_id_file(*location).read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    return text if re.fullmatch(r"[0-9a-f]{32}", text) else None


def held_by_another_process(dsn: str) -> bool:
    """True when another process has the chDB directory open (chDB locks `<dir>/status`).
    Asked before opening, so the engine never tries a held directory (and prints nothing)."""
    location = chdb_location(dsn)
    path = location[0] if location else None
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
