"""Store writes behind the engine: `tracker ingest`'s one write in flight (issue 12).

A store write is mostly the store's own work (chDB's insert runs outside the GIL), during which
the engine's thread would only wait. With `background`, each write runs on one thread of its own
while the caller applies the next events: at most one write is in flight, the writes run one
after another in the order given (so the store's rows, and their order, are those of writing
each batch in place), and a write's error is raised by the caller's next `write` or `wait`.

Crash safety is that of `sinks.base`: a batch is handed over only once the one before it is
stored, and the caller waits for the write in flight before it reads the store or writes
anything else (a commit mark, a checkpoint) - so the store never holds a later write without
every earlier one, and a process killed at any point leaves what a synchronous writer killed at
the same insert leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from sinks.base import Batch, Store


class WriteBehind:
    """The store's writes (`store`: writes one batch), in place (`background=False`: each
    `write` returns once stored) or one at a time on a thread of their own."""

    def __init__(self, store: Callable[[Batch], None], *, background: bool = False) -> None:
        self.store = store
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-write")
            if background
            else None
        )
        self._in_flight: Future[None] | None = None

    def write(self, batch: Batch) -> None:
        """Store `batch` after every batch before it; raises the error of the write before it,
        if that one failed (then `batch` is not written)."""
        if self._pool is None:
            self.store(batch)
            return
        self.wait()
        self._in_flight = self._pool.submit(self.store, batch)

    def wait(self) -> None:
        """Return once nothing is in flight; raises the error of the write that was."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def close(self) -> None:
        """Wait for the write in flight without raising its error (for a caller that is ending,
        on its error or after a `wait` that raised nothing), and stop the thread."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.exception()  # waits; the error is the caller's to have seen or not
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def write_new_letters(store: Store, batch: Batch) -> None:
    """Write `batch` without the dead letters the store holds already: a re-ingested bad line
    keeps its first dead letter (and its first received_at), also when it comes twice before a
    write. Asked as the batch is written, so after every write before it."""
    letters = batch.dead_letters
    if letters:
        known = store.known_letters(sorted({d.letter_id for d in letters}))
        first = []
        for letter in letters:
            if letter.letter_id not in known:
                known.add(letter.letter_id)
                first.append(letter)
        batch.dead_letters = first
    store.write(batch)
