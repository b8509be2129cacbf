"""The intake journal of the embedded backend: a write-ahead log of accepted requests
(docs/access.md, "How the embedded backend writes").

A request the door accepted is appended as one JSON line - who posted it, when it was received,
its accepted lines as the door read them - and made durable (fdatasync; concurrent requests
share one) before it is answered. The applier (tracker/serve/embedded_applier.py) then applies
the journal in order into the store and records here how far it got; a restart applies the rest.
Applying twice is harmless (the event log tells duplicates by `event_id`, dead letters keep their
first copy by letter id), so the applied position is written after the store, without fsync: a
crash in between re-applies at most what was applied already.

The journal is a directory of segments (`<n>.jsonl`); the door starts a new segment when the
current one is over `segment_bytes`, and a segment is deleted once applied to its end. On
disk the journal is untrusted input, read as JSON and checked line by line (never unpickled):
a torn last line (a crash in the middle of an append, never answered) is cut off with a log
line; a damaged line elsewhere is skipped with a log line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.step import Parsed

log = logging.getLogger("tracker.serve.journal")

VERSION = 1
SEGMENT_BYTES = 64 * 1024 * 1024
_APPLIED = "applied.json"


@dataclass(frozen=True)
class Entry:
    """One accepted request, in the journal's order."""

    seq: int  # 1, 2, ... in this process: the order the applier follows
    posted_by: str
    received_at: datetime
    lines: tuple[tuple[int, str], ...]  # (line of the request, the text the door read)
    segment: int  # where its record ends: (segment, offset after it)
    end: int
    position: int  # bytes appended by this process up to its end (0: read back at start)
    # The door's reading of the lines (not read again); None for an entry read back from disk.
    parsed: tuple[Parsed, ...] | None = None

    def __len__(self) -> int:
        return len(self.lines)


class JournalError(OSError):
    """The journal cannot be written; the request was not accepted."""


class Journal:
    """Appends (by the door, one at a time: the caller holds its lock), group fsync, and the
    applied position. `directory=None` keeps it in memory only (a memory store: nothing to be
    durable for)."""

    def __init__(self, directory: Path | None, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._seq = 0
        self._segment = 1
        self._size = 0  # of the current segment
        self._fd: int | None = None
        self._written = 0  # bytes appended in this process (a position across segments)
        self._synced = 0
        self._sync_lock = threading.Lock()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    # -- the door --------------------------------------------------------------------------------

    def append(
        self,
        posted_by: str,
        received_at: datetime,
        lines: Sequence[tuple[int, str]],
        parsed: Sequence[Parsed],
    ) -> Entry:
        """Write one entry (not yet durable: `sync` its position). The caller holds
        the door's lock, so entries are numbered and written in one order."""
        record = {
            "v": VERSION,
            "by": posted_by,
            "at": received_at.isoformat(),
            "lines": [[n, raw] for n, raw in lines],
        }
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        if self.directory is not None:
            if self._fd is None or self._size >= self.segment_bytes:
                self._open_next()
            assert self._fd is not None
            try:
                written = os.write(self._fd, data)
            except OSError as exc:
                raise JournalError(f"the intake journal cannot be written: {exc}") from None
            if written != len(data):  # a full disk: cut the partial record off
                os.ftruncate(self._fd, self._size)
                raise JournalError("the intake journal cannot be written: disk full")
        self._size += len(data)
        self._written += len(data)
        self._seq += 1
        entry = Entry(
            self._seq,
            posted_by,
            received_at,
            tuple(lines),
            self._segment,
            self._size,
            self._written,
            tuple(parsed),
        )
        return entry

    def sync(self, position: int) -> None:
        """Return once everything written up to `position` is on disk. Whoever finds no sync
        under way syncs everything written so far, for the requests queued behind it too."""
        with self._sync_lock:
            if self._synced >= position:
                return
            target, fd = self._written, self._fd
            if fd is not None:
                try:
                    os.fdatasync(fd)
                except OSError as exc:
                    raise JournalError(f"the intake journal cannot be synced: {exc}") from None
            self._synced = max(self._synced, target)

    def synced(self) -> int:
        return self._synced

    def _open_next(self) -> None:
        assert self.directory is not None
        if self._fd is not None:
            os.fsync(self._fd)  # what is in it stays durable whatever comes next
            os.close(self._fd)
            self._segment += 1
        path = self.directory / f"{self._segment:012d}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size
        _sync_dir(self.directory)

    # -- the applier -----------------------------------------------------------------------------

    def applied(self, entry: Entry) -> None:
        """Record that everything up to `entry` is in the store, and delete the segments
        before its own."""
        if self.directory is None:
            return
        mark = self.directory / _APPLIED
        temporary = mark.with_suffix(".tmp")
        temporary.write_text(json.dumps({"segment": entry.segment, "offset": entry.end}))
        os.replace(temporary, mark)
        for segment, path in _segments(self.directory):
            if segment < entry.segment:
                path.unlink(missing_ok=True)

    def recover(self) -> list[Entry]:
        """The entries not applied yet (at start, before any append), in order. New appends go
        to a new segment."""
        if self.directory is None:
            return []
        segment, offset = self._applied_mark()
        entries: list[Entry] = []
        last = segment  # new segments come after the applied one, even if it is gone
        for number, path in _segments(self.directory):
            last = max(last, number)
            if number < segment:
                path.unlink(missing_ok=True)  # applied; its deletion was cut short
                continue
            start = offset if number == segment else 0
            entries.extend(self._read_segment(number, path, start))
        self._segment = last  # `_open_next` moves on to the next one
        self._fd = None
        if (self.directory / f"{last:012d}.jsonl").exists():
            self._fd = os.open(self.directory / f"{last:012d}.jsonl", os.O_WRONLY | os.O_APPEND)
        else:
            self._segment = last + 1 if last else 1
        self._size = self.segment_bytes  # so that the first append opens a new segment
        return entries

    def _applied_mark(self) -> tuple[int, int]:
        assert self.directory is not None
        try:
            mark = json.loads((self.directory / _APPLIED).read_text())
            segment, offset = mark["segment"], mark["offset"]
            if isinstance(segment, int) and isinstance(offset, int):
                return segment, offset
            raise ValueError("not integers")
        except FileNotFoundError:
            return 0, 0
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("intake journal: applied mark unreadable (%s): re-applying it all", exc)
            return 0, 0

    def _read_segment(self, number: int, path: Path, start: int) -> list[Entry]:
        data = path.read_bytes()
        good = data.rfind(b"\n") + 1
        if good < len(data):
            log.warning(
                "intake journal %s: a torn last record (%d bytes; a crash while it was "
                "written, never answered) is cut off",
                path.name,
                len(data) - good,
            )
            with path.open("r+b") as torn:
                torn.truncate(good)
                os.fsync(torn.fileno())
        entries = []
        position = 0
        for raw in data[:good].split(b"\n")[:-1]:
            position += len(raw) + 1
            if position <= start:
                continue
            found = _entry(raw)
            if found is None:
                log.error(
                    "intake journal %s: a damaged record at byte %d is skipped",
                    path.name,
                    position - len(raw) - 1,
                )
                continue
            self._seq += 1
            posted_by, received_at, lines = found
            entries.append(Entry(self._seq, posted_by, received_at, lines, number, position, 0))
        return entries


def _entry(raw: bytes) -> tuple[str, datetime, tuple[tuple[int, str], ...]] | None:
    """A record as written by `append`, checked field by field; None when it is not one."""
    try:
        record: Any = json.loads(raw)
        if not isinstance(record, dict) or record.get("v") != VERSION:
            return None
        posted_by, at, lines = record["by"], record["at"], record["lines"]
        received_at = datetime.fromisoformat(at)
        if not isinstance(posted_by, str) or received_at.tzinfo is None:
            return None
        if not isinstance(lines, list) or not all(
            isinstance(x, list) and len(x) == 2 and isinstance(x[0], int) and isinstance(x[1], str)
            for x in lines
        ):
            return None
        return posted_by, received_at, tuple((n, text) for n, text in lines)
    except (ValueError, KeyError, TypeError):
        return None


def _segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.glob("*.jsonl"):
        if path.stem.isdigit():
            found.append((int(path.stem), path))
    return sorted(found)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
