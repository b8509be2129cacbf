"""Opening a store, the parts that need no driver: the DSN's database, the embedded engine's
directory checked on disk, what the engine says on stderr while it starts, and failures said
once, in one line, without the password. The driver's connection (sinks/connection.py) and
chDB's own (sinks/chdb_rows.py) both open through these."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

from sinks.dsn import DEFAULT_DATABASE, NoStoreError, StoreHeldError, canonical, chdb_location, mask
from sinks.errors import StoreError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# what chDB prints on stderr itself when another process has the directory open
_LOCKED = re.compile(r"Cannot lock file (\S+)\. Another server instance")


def split_dsn(dsn: str) -> tuple[str, str]:
    """The DSN without its `database` parameter, and that database (default `tracker`)."""
    parsed = urlparse(dsn)
    query = parse_qs(parsed.query)
    database = query.pop("database", [DEFAULT_DATABASE])[0]
    if not _NAME.match(database):
        raise StoreError(f"invalid database name {database!r}")
    rest = urlencode({k: v[0] for k, v in query.items()})
    return urlunparse(parsed._replace(query=rest)), database


def first_line(exc: BaseException, dsn: str | None = None) -> str:
    return mask((str(exc).strip().splitlines() or [type(exc).__name__])[0][:300], dsn)


def insert_failed(table: str, exc: BaseException) -> StoreError:
    """The error for an insert into `table` (its name without the database) that failed: one
    text whether the CLI's own driver or its writer process (sinks/writer_process.py) ran it."""
    return StoreError(f"store insert into {table} failed: {first_line(exc)}")


def open_failed(exc: BaseException, dsn: str, said: list[str]) -> StoreError:
    """The error for a store that did not open: held by another process (chDB's own stderr
    line says which lock), or the failure's first line."""
    locked = next((m for m in map(_LOCKED.search, said) if m), None)
    if locked:
        return StoreHeldError(
            f"cannot open store {canonical(dsn)}: another process holds it ({locked[1]} is locked)"
        )
    return StoreError(f"cannot open store {mask(dsn)}: {first_line(exc, dsn)}")


@contextmanager
def without_arrow() -> Iterator[None]:
    """chDB imports pyarrow, and with it numpy, on its first connection, for the Arrow results
    of its own API, which this project never asks for (the driver reads the Native format): 0.15
    to 0.2 s of CPU of every process that opens a store, a fifth of `tracker status` on a large
    store (BENCHMARKS.md). chDB holds pyarrow optional ("everything else must keep working
    without it"): the first connection is made with pyarrow unimportable. Only chDB's module
    keeps that; pyarrow is importable again after it, for anything else."""
    if "pyarrow" in sys.modules or "chdb.state.sqlitelike" in sys.modules:
        yield  # already imported, with or without it
        return
    sys.modules["pyarrow"] = None  # type: ignore[assignment]  # an import of it fails
    try:
        yield
    finally:
        if "pyarrow" in sys.modules and sys.modules["pyarrow"] is None:
            del sys.modules["pyarrow"]


@contextmanager
def engine_stderr(embedded: bool) -> Iterator[list[str]]:
    """What the embedded engine writes straight to file descriptor 2 while it starts: its
    "Cannot lock file" line is read here and said once in the StoreError (not on every read
    while a worker holds the store); any other line is passed on to stderr as it was."""
    said: list[str] = []
    if not embedded:
        yield said
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield said
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            said += capture.read().decode("utf-8", "replace").splitlines()
            rest = [line for line in said if not _LOCKED.search(line)]
            if rest:
                print("\n".join(rest), file=sys.stderr)


def require_embedded_store(dsn: str) -> None:
    """For a chDB DSN, that its directory holds the database, checked on disk: the embedded
    engine creates its directories on start, wherever it is pointed."""
    location = chdb_location(dsn)
    if location is None:
        return
    path, database = location
    if not path.is_dir():
        raise NoStoreError(f"no store at {canonical(dsn)}: {path} does not exist")
    if not _holds_database(path, database):
        hint = beside_hint(stores_beside(path, database))
        raise NoStoreError(
            f"no store at {canonical(dsn)}: {path} holds no tracker store (no database "
            f"{database!r}{'; ' + hint if hint else ''})"
        )


def _holds_database(path: Path, database: str) -> bool:
    """Whether an embedded store's folder holds the database (its metadata file, on disk)."""
    return (path / "metadata" / f"{database}.sql").is_file()


def stores_beside(path: Path, database: str) -> list[str]:
    """The other databases of an embedded store's folder that hold a tracker store (its event
    log and its meta table), in name order, read on disk: what a DSN naming a database the
    folder does not hold - or none, so `tracker` - was probably meant to name."""
    meta = path / "metadata"
    try:
        names = sorted(p.stem for p in meta.glob("*.sql"))
    except OSError:
        return []
    return [
        name
        for name in names
        if name != database
        and _NAME.match(name)  # a name `split_dsn` refuses is none to suggest
        and (meta / name / "events.sql").is_file()
        and (meta / name / "meta.sql").is_file()
    ]


def beside_hint(names: list[str]) -> str:
    """What to add to the DSN to open the stores `stores_beside` found ("" for none)."""
    if not names:
        return ""
    if len(names) == 1:
        return (
            f"the folder holds the tracker store of database {names[0]!r}: add "
            f"?database={names[0]} to the DSN to open it"
        )
    listed = ", ".join(repr(name) for name in names)
    return (
        f"the folder holds the tracker stores of databases {listed}: add ?database=NAME to the "
        "DSN to open one"
    )


def new_store_beside(dsn: str) -> str | None:
    """For a writer about to make the store of an embedded DSN: what to say when its folder
    does not hold that database but holds other tracker stores. The store asked for is still
    made (two stores in one folder are allowed), but a DSN that forgot its `?database=` would
    otherwise start an empty ledger beside the one meant, and accept every event again."""
    location = chdb_location(dsn)
    if location is None:
        return None
    path, database = location
    if _holds_database(path, database):
        return None
    hint = beside_hint(stores_beside(path, database))
    if not hint:
        return None
    return (
        f"{canonical(dsn)}: {path} holds no database {database!r}, so a new, empty store is "
        f"made in it ({hint})"
    )
