"""The lines `Tracker.feed_lines` reads (tracker/pipeline.py): each numbered as it came
(`ORIGIN:LINE`), a chunk at a time, and a chunk read ahead with the event log's answer about its
ids on the way."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from engine.step import Parsed, Refusal, read_record

Numbered = tuple[str, bytes | str, bool]  # `ORIGIN:LINE`, the line, whether it is the first
Read = tuple[str, Parsed | Refusal | None]  # `ORIGIN:LINE` and what reading the line gave


@dataclass(frozen=True, slots=True)
class ReadChunk:
    """A chunk of lines read ahead (`Tracker._read_ahead`): each line's origin and what reading
    it gave, the answer of the event log about its ids (None: the log held none of them), and
    the ids logged since the ask that the answer may lack."""

    lines: list[Read]
    answer: Callable[[], set[str]] | None
    since: set[str]


def chunks(lines: Iterable[bytes | str], origin: str, size: int) -> Iterator[list[Numbered]]:
    """The lines numbered from 1, `size` at a time (the last chunk may be empty)."""
    chunk: list[Numbered] = []
    for number, line in enumerate(universal_newlines(lines), start=1):
        chunk.append((f"{origin}:{number}", line, number == 1))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    yield chunk


def read_lines(chunk: list[Numbered]) -> list[Read]:
    """Each line of the chunk read (engine/step.py `read_record`), with its origin."""
    return [(where, read_record(line, first=first)) for where, line, first in chunk]


def universal_newlines(lines: Iterable[bytes | str]) -> Iterator[bytes | str]:
    """Bytes ended at LF, CR LF or a lone CR, as a file read as text ends its lines."""
    for line in lines:
        if isinstance(line, bytes) and b"\r" in line:
            yield from line.splitlines(keepends=True)
        else:
            yield line
