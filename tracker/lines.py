"""The lines `Tracker.feed_lines` reads (tracker/pipeline.py): each numbered as it came
(`ORIGIN:LINE`), a chunk at a time, and a chunk read ahead with the event log's answer about its
ids on the way; `tracker ingest` reads a file's chunks in its waits for its writer process
(`LinesRead`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

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


def read_lines(chunk: list[Numbered]) -> list[Read]:
    """Each line of the chunk read (engine/step.py `read_record`), with its origin."""
    return [(where, read_record(line, first=first)) for where, line, first in chunk]


class LinesRead:
    """The lines numbered from 1 (`numbered`), `size` at a time (the last chunk may be empty),
    each chunk read (`read_lines`); some of them ahead of their taker, in the time its process
    would otherwise wait (`read_some`). Without such waits, each chunk is read when taken.

    Why: `tracker ingest` waits ~0.5 s for its writer process to open the store, its core idle
    meanwhile, and waits for it again here and there; reading a chunk of 20,000 lines costs
    ~0.1-0.2 s of CPU. The writer client calls `read_some` while it waits for a reply
    (sinks/writer_process.py `WriterClient.idle`): a few hundred lines at a time, so that a
    reply waits a millisecond or two for it at most. One thread does it all, so the chunks are
    what reading them when taken would give (reading is pure: engine/step.py `read_record`; a
    refused line becomes its dead letter when its turn comes, `Tracker.feed_lines`). At most
    `start_chunks` chunks are read before the first is taken (while the store opens and the
    engine restores), then at most `ahead_chunks` beyond the one taken (~40 MiB a chunk of
    20,000 lines read). An error reading the lines (the file's, the terminal's) is raised to the
    taker where the chunk it stopped would have been, never to the wait that read them."""

    def __init__(
        self,
        lines: Iterable[bytes | str],
        origin: str,
        size: int,
        *,
        start_chunks: int = 4,
        ahead_chunks: int = 2,
        piece_lines: int = 250,
    ) -> None:
        self.size = size
        self._lines = numbered(lines, origin)
        self._piece = max(1, piece_lines)
        self._ready: deque[list[Read]] = deque()
        self._partial: list[Read] = []  # the chunk being read
        self._most = start_chunks
        self._ahead = ahead_chunks
        self._ended = False  # every line read (the last chunk, maybe empty, is in `_ready`)
        self._failed: Exception | None = None  # reading failed: raised by the taker

    def read_some(self) -> bool:
        """Read a few lines ahead, if the bound allows. False: nothing to read now."""
        if self._ended or self._failed is not None or len(self._ready) >= self._most:
            return False
        try:
            self._read(self._piece)
        except Exception as exc:  # the taker's to raise, not the caller's (a store's wait)
            self._failed = exc
        return True

    def __iter__(self) -> Iterator[list[Read]]:
        """The chunks in order (the last may be empty), each taken once."""
        while True:
            if not self._ready:
                if self._failed is not None:
                    raise self._failed
                if self._ended:
                    return
                self._read(self.size - len(self._partial))
                continue
            self._most = self._ahead
            yield self._ready.popleft()

    def _read(self, most: int) -> None:
        partial, size = self._partial, self.size
        want = min(most, size - len(partial))
        got = list(islice(self._lines, want))
        partial.extend(read_lines(got))
        ended = len(got) < want  # the lines have ended (a full chunk got all it wanted)
        if ended or len(partial) >= size:
            self._ready.append(partial)
            self._partial = []
            self._ended = ended


def numbered(lines: Iterable[bytes | str], origin: str) -> Iterator[Numbered]:
    """The lines numbered from 1 as `ORIGIN:LINE`, each with whether it is the first."""
    for number, line in enumerate(universal_newlines(lines), start=1):
        yield (f"{origin}:{number}", line, number == 1)


def universal_newlines(lines: Iterable[bytes | str]) -> Iterator[bytes | str]:
    """Bytes ended at LF, CR LF or a lone CR, as a file read as text ends its lines."""
    for line in lines:
        if isinstance(line, bytes) and b"\r" in line:
            yield from line.splitlines(keepends=True)
        else:
            yield line
