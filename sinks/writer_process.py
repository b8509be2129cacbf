"""The store's driver in a writer process of its own (`tracker ingest --writer process`).

`WriterClient` is the part of clickhouse-connect's `Client` that `ClickHouseStore` uses (query,
command, insert, create_insert_context, query_rows_stream, close); a child process owns the
embedded chDB session (one process may open a chDB store) and runs the real driver, so the
driver's column serialisation and chDB's insert run beside the CLI's engine instead of on its
one thread (issue 12; a thread did not gain: the serialisation holds the GIL, docs/ingest.md).
The child's side is sinks/writer_child.py (`python -m sinks.writer_child`).

- An insert is sent and not waited for. The child runs everything in the order it was sent, so
  the crash-safe order of sinks/base.py holds (rows, then what commits them, then the
  checkpoint). Every other call waits for the inserts before it.
- A failed insert makes the child refuse everything after it: the store's own error text
  ("store insert into T failed: ...") reaches the caller at its next call or at close, and
  nothing sent after the failed insert is stored.
- At most `IN_FLIGHT` bytes of inserts wait to be sent (about two batches of
  `tracker ingest`); the caller waits for room beyond that.
- A child that dies is a StoreError at the next call, never a hang; a CLI that dies takes the
  child with it (SIGKILL on the parent's death, Linux), as a crash of the CLI took its
  in-process chDB: an insert cut short is not stored, the next run finishes the batch.

What crosses: plain values (the columns, SQL text, parameters, the type names; each side makes
the driver's type objects from their names; the fields of the events whose rows the child makes,
sinks/writer_events.py, and the signing key's 32 bytes to sign them with), pickled over a socket
pair between the CLI and the child it started, and nothing else: never a network, a file or
another process. The child unpickles only what its parent sends, the parent only its child's
replies.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sinks.errors import StoreError

if TYPE_CHECKING:
    from config.signing import Signer
    from sinks.base import UnmadeEvents

# bytes of pickled inserts not yet handed to the child: a batch of `tracker ingest` (20k records)
# is ~19 MiB pickled, so about two batches
IN_FLIGHT = 40 << 20
_EXIT_WAIT = 30.0  # seconds a closed child has to end before it is killed
_HIGHEST = pickle.HIGHEST_PROTOCOL
_SEND_WAIT_S = 0.005  # how long a reply's wait waits for the sends before the caller's work
_NO_MEMO = (str, tuple)  # kinds of value of the columns pickled without the memo (`column_piece`)


def column_types(names: Sequence[str]) -> list[Any]:
    """The driver's type objects of these type names (e.g. `DateTime64(3, 'Asia/Shanghai')`)."""
    import clickhouse_connect.datatypes  # noqa: F401  # registers the types by name
    from clickhouse_connect.datatypes.registry import get_from_name

    return [get_from_name(name) for name in names]


def column_piece(column: Sequence[Any]) -> Any:
    """One column of an insert as it is sent: a column of texts (ids, digests, raw lines, reasons)
    or of tuples of them pickled alone, without the pickler's memo; any other column as it is,
    pickled with the message. Each value of a text column is an object of its own, so the memo
    only grew, by an entry per value: pickling a batch's columns in one message with one memo
    cost ~30% more CPU than this (the inserts' pickling is ~4% of the CLI's time). Other
    columns (Decimals, ticks, flags, a checkpoint's parts as bytes) keep the memo, which writes a
    repeated object once (a Decimal's class, the one zero), and a part's bytes are not copied
    twice. Columns hold plain values, never a cycle, which is what the memo also guards against.
    The child takes a `bytes` piece for a pickled column: a column itself is a sequence."""
    if not column or type(column[0]) not in _NO_MEMO:
        return column
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=_HIGHEST)
    pickler.fast = True  # no memo (see above)
    pickler.dump(column)
    return out.getvalue()


def column_from_piece(piece: Any) -> Any:
    """The column `column_piece` made `piece` of."""
    return pickle.loads(piece) if type(piece) is bytes else piece


class _Context:
    def __init__(self, types: list[Any]) -> None:
        self.column_types = types


class _Result:
    def __init__(self, rows: list[Sequence[Any]]) -> None:
        self.result_rows = rows


def _spawn() -> tuple[subprocess.Popen[bytes], socket.socket]:
    """A writer process, and this side of the socket pair to it."""
    ours, theirs = socket.socketpair()
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        # a fresh interpreter (as multiprocessing's "spawn"): chDB's threads do not survive
        # a fork, and the CLI's own modules are not imported again
        argv = [sys.executable, "-m", "sinks.writer_child", str(theirs.fileno())]
        proc = subprocess.Popen(
            [*argv, str(os.getpid())],
            pass_fds=(theirs.fileno(),),
            env=env,
            stdin=subprocess.DEVNULL,  # the CLI's input and output are the CLI's own
            stdout=subprocess.DEVNULL,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


# a writer process started ahead (`prestart`), which the next WriterClient takes
_started: list[tuple[subprocess.Popen[bytes], socket.socket]] = []


def prestart() -> None:
    """Start the writer process now, before the store it will open is known: its interpreter,
    the driver's imports and chDB's library (~0.4 s) then run beside the CLI's own start, not
    after it, and it waits for the store to open. The next WriterClient takes it. One never taken holds
    nothing (no store is opened before the client asks) and ends when the CLI does: its end of
    the socket pair closes (or, Linux, the parent's death kills it)."""
    if not _started:
        _started.append(_spawn())


class WriterClient:
    """The driver's client, run by a child process; see the module's text."""

    def __init__(self, dsn: str, idle: Callable[[], bool] | None = None) -> None:
        # the caller's own work, done a little at a time while a reply is awaited (`_reply`):
        # False when there is none now (tracker/lines.py `LinesRead.read_some`)
        self.idle = idle
        self._proc, ours = _started.pop() if _started else _spawn()
        from sinks import faulty  # (not in the child: it needs the settings and the models)

        faulty.writer_pid = self._proc.pid  # for the drill that kills it
        self._conn = Connection(ours.detach())
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._room = threading.Condition()
        self._queued = 0  # bytes in the outbox
        self._broken: BaseException | None = None  # the sender's failure
        self._closed = False
        self._signer: Signer | None = None  # the key the child was sent (`make_events`)
        # column types asked for ahead (`prefetch_contexts`)
        self._contexts: dict[tuple[str, ...], list[str]] = {}
        # what was asked and not waited for (`prefetch_contexts`, `query_later`), oldest first:
        # their replies come before any later call's, each handed to its taker
        self._awaited: collections.deque[Callable[[tuple[str, Any] | Exception], None]] = (
            collections.deque()
        )
        self._sender = threading.Thread(target=self._send_all, name="store-writer", daemon=True)
        self._sender.start()
        try:
            self._call("open", dsn)
        except BaseException:
            self._end()
            raise

    # -- the client's surface --------------------------------------------------------------

    def insert(
        self,
        table: str,
        data: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        column_types: Sequence[Any],
        column_oriented: bool = False,
    ) -> None:
        names = [t.name for t in column_types]
        if column_oriented:  # the text columns pickled alone: see `column_piece`
            data = list(map(column_piece, data))
        self._post(("insert", table, data, list(column_names), names, column_oriented))

    def make_events(self, db: str, unmade: UnmadeEvents) -> None:
        """Make and store the event log's rows of `unmade` in the child (sinks/writer_events.py),
        as an insert is: sent, not waited for. The signing key is sent once, the fields as
        columns."""
        signer = unmade.signer
        if signer is not None and signer is not self._signer:
            self._post(("signer", signer.private_raw()))
            self._signer = signer
        from sinks.writer_events import event_columns

        columns = event_columns(unmade.fields)
        self._post(("events", db, unmade.partition, unmade.previous, columns, signer is not None))

    def event_head_later(self, db: str, partition: int) -> Callable[[], str]:
        """The chain value the child's last `make_events` of the partition ended at, sent now
        and answered when the function it returns is called."""
        answer = self._later(("event_head", db, partition))
        return lambda: str(answer())

    def create_insert_context(self, table: str, column_names: Sequence[str]) -> _Context:
        self._settle()
        names = self._contexts.get((table, *column_names))
        if names is None:
            names = self._call("context", table, list(column_names))
        return _Context(column_types(names))

    def prefetch_contexts(self, wanted: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Ask for the column types of inserts to come (table, columns), not waiting for the
        answer: asked for at their first insert, each waited for the inserts queued before it
        (the child runs everything in order), a stall of the CLI mid-run. The answer is read
        with the next reply; if it is an error, each is asked for again when it is needed."""
        keys = [(table, *columns) for table, columns in wanted]

        def take(reply: tuple[str, Any] | Exception) -> None:
            if not isinstance(reply, Exception):  # else asked for again when needed: that
                self._contexts.update(zip(keys, reply[1], strict=True))  # call says what

        self._ask(("contexts", [(k[0], list(k[1:])) for k in keys]), take)

    def query_later(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> Callable[[], _Result]:
        """`query`, sent now and its answer read when the function it returns is called (or
        before the next call's): the child answers it after the inserts sent before it, while
        this side goes on. The answer is the store as it was then; an error is raised by the
        function."""
        answer = self._later(("query", sql, parameters, None))
        return lambda: _Result(answer())

    def query(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        column_formats: dict[str, str] | None = None,
    ) -> _Result:
        return _Result(self._call("query", sql, parameters, column_formats))

    def command(self, sql: str) -> Any:
        return self._call("command", sql)

    def raw_query(self, query: str, fmt: str) -> bytes:
        """The answer's bytes in a format of ClickHouse's (a dump, in the tests)."""
        return bytes(self._call("raw", query, fmt))

    @contextmanager
    def query_rows_stream(self, sql: str) -> Iterator[Iterator[Sequence[Any]]]:
        self._settle()
        self._post(("stream", sql))
        done = False

        def rows() -> Iterator[Sequence[Any]]:
            nonlocal done
            while True:
                try:
                    kind, value = self._reply()
                except BaseException:
                    done = True  # an error ends the answer
                    raise
                if kind == "end":
                    done = True
                    return
                yield from value

        try:
            yield rows()
        finally:
            while not done:  # the rest of the answer is read and dropped: the next call's reply
                kind, _ = self._reply()  # follows it
                done = kind == "end"

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._call("close")
        finally:
            self._end()

    # -- plumbing --------------------------------------------------------------------------

    def _post(self, message: tuple[Any, ...]) -> None:
        if self._closed:
            raise StoreError("the store's writer process is closed")
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._room:
            while self._queued and self._queued + len(data) > IN_FLIGHT and not self._broken:
                self._room.wait()
            if self._broken is not None:
                raise self._died() from None
            self._queued += len(data)
        self._outbox.put(data)

    def _send_all(self) -> None:
        while (data := self._outbox.get()) is not None:
            try:
                self._conn.send_bytes(data)
            except OSError as exc:  # the child has gone (EPIPE, ECONNRESET)
                with self._room:
                    self._broken = exc
                    self._room.notify_all()
                return
            with self._room:
                self._queued -= len(data)
                self._room.notify_all()

    def _ask(
        self, message: tuple[Any, ...], take: Callable[[tuple[str, Any] | Exception], None]
    ) -> None:
        """Send a call whose reply is read later (before any later call's), handed to `take`."""
        self._post(message)
        self._awaited.append(take)

    def _later(self, message: tuple[Any, ...]) -> Callable[[], Any]:
        """Send a call and return what reads its answer (the value of its reply) when called,
        and again when called again; its error is raised each time."""
        got: list[tuple[str, Any] | Exception] = []
        self._ask(message, got.append)

        def answer() -> Any:
            while not got:
                if not self._awaited:  # its reply was lost to an interruption
                    raise StoreError("the store's writer process's answer was lost")
                self._settle(1)
            reply = got[0]
            if isinstance(reply, Exception):
                raise reply
            return reply[1]

        return answer

    def _settle(self, most: int | None = None) -> None:
        """Read the replies of what was asked and not waited for (`_ask`), oldest first: they
        come before any later call's. At most `most` of them. An error is handed over as the
        reply: a later call that fails for the same cause says so itself."""
        awaited = self._awaited
        while awaited and (most is None or most > 0):
            take = awaited.popleft()
            try:
                reply: tuple[str, Any] | Exception = self._reply()
            except Exception as exc:
                reply = exc
            take(reply)
            if most is not None:
                most -= 1

    def _reply(self) -> tuple[str, Any]:
        idle, conn = self.idle, self._conn
        if idle is not None and not conn.poll():
            # Until the reply comes, the caller's own work (`idle`), a piece at a time. What
            # was posted is sent first (a moment for it): the sender thread needs the
            # interpreter, which the work would hold up to a switch interval (5 ms) a message
            with self._room:
                self._room.wait_for(self._sent, timeout=_SEND_WAIT_S)
            while not conn.poll() and idle():
                pass
        try:
            kind, value = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            raise self._died() from None
        if kind == "err":
            raise value
        return str(kind), value

    def _sent(self) -> bool:
        return not self._queued or self._broken is not None

    def _call(self, op: str, *args: Any) -> Any:
        self._settle()
        self._post((op, *args))
        return self._reply()[1]

    def _died(self) -> StoreError:
        try:
            code = self._proc.wait(timeout=5)
            how = f"signal {-code}" if code < 0 else f"exit status {code}"
        except subprocess.TimeoutExpired:
            how = "its connection closed"
        return StoreError(
            f"the store's writer process (pid {self._proc.pid}) ended ({how}); "
            "what it had not stored is stored by the next run"
        )

    def _end(self) -> None:
        """Stop the sender, and the child if it does not end by itself."""
        self._closed = True
        self._outbox.put(None)
        self._sender.join(timeout=_EXIT_WAIT)
        self._conn.close()
        try:
            self._proc.wait(timeout=_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
