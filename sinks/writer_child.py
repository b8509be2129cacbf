"""The writer process's side of sinks/writer_process.py: run as `python -m sinks.writer_child FD
PARENT` by the `WriterClient` that started it, it owns the embedded chDB session and runs, in the
order they were sent, the calls its parent sends over the socket pair FD: the driver's inserts,
queries and commands, and the making of the event log's rows (sinks/writer_events.py). It
unpickles only what its parent sends, and dies with its parent (module text of
sinks/writer_process.py).
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from sinks.errors import StoreError
from sinks.writer_process import column_from_piece, column_types

_STREAM_ROWS = 5_000  # rows a message of a streamed query
_IDLE_S = 0.05  # seconds without a message after which the child imports its row code


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the CLI that started it dies (Linux); a parent already gone
    ends it now. Elsewhere the end of the pipe ends it, after what was sent."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _insert_failed(table: str, exc: BaseException) -> BaseException:
    """The error `ClickHouseStore._insert` raises for this failure, with the same text."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from sinks.store_open import insert_failed

    if isinstance(exc, ClickHouseError):
        return insert_failed(table.split(".", 1)[-1], exc)
    return exc


def _sendable(exc: BaseException) -> BaseException:
    """The exception, or one of the same text if it does not pickle."""
    try:
        pickle.dumps(exc)
        return exc
    except Exception:
        from clickhouse_connect.driver.exceptions import ClickHouseError

        kind = ClickHouseError if isinstance(exc, ClickHouseError) else RuntimeError
        return kind(str(exc))


def _event_rows() -> Any:
    from sinks.writer_events import EventRows

    return EventRows()


def serve(conn: Connection) -> None:
    # chDB's library (~0.2 s to load) is loaded now: beside the CLI's own start when this child
    # was started ahead (`prestart`), not after the store is asked to open. Loading it makes
    # nothing on disk; only `open` names a store. (Only a chDB store has a writer process.)
    import chdb  # noqa: F401

    from config.collector import tune_gc
    from sinks.connection import connect

    # This process makes cycles (the driver's insert contexts), so it keeps the collector,
    # tuned: at the default thresholds its frequent full collections walked every batch being
    # made, ~15% of its CPU (py-spy, the 200k stream). What a cycle held is let go without it
    # (`data.clear()`).
    tune_gc()

    client: Any = None
    failed: BaseException | None = None
    types: dict[tuple[str, ...], list[Any]] = {}
    made: Any = None  # the event log's rows made here (sinks/writer_events.py), once asked

    def reply(kind: str, value: Any) -> None:
        conn.send_bytes(pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL))

    try:
        while True:
            if made is None and client is not None and not conn.poll(_IDLE_S):
                # What makes the event log's rows (sinks/writer_events.py: the engine's row
                # code, the models, the signing library; ~0.3 s to import) is imported the
                # first time the child has waited a moment with a store open: while the CLI
                # applies its first events, not between the calls of its store's open and
                # restore, which would wait for it.
                made = _event_rows()
                gc.freeze()  # its modules' objects too
            try:
                message = pickle.loads(conn.recv_bytes())
            except EOFError:  # the CLI has closed the pipe: nothing more comes
                return
            op, args = message[0], message[1:]
            if op == "insert":
                if failed is None:
                    table, data, names, type_names, oriented = args
                    if oriented:  # as `column_piece` sent them
                        data = list(map(column_from_piece, data))
                    try:
                        key = tuple(type_names)
                        if key not in types:
                            types[key] = column_types(type_names)
                        client.insert(
                            table,
                            data,
                            column_names=names,
                            column_types=types[key],
                            column_oriented=oriented,
                        )
                    except Exception as exc:
                        failed = _sendable(_insert_failed(table, exc))
                    finally:
                        # the driver's insert context keeps the list and is freed only by the
                        # cyclic collector (ClickHouseStore._insert): its columns go now
                        if isinstance(data, list):
                            data.clear()
                continue
            if op in ("signer", "events"):  # sent, not waited for, as an insert
                if failed is None:
                    try:
                        made = made or _event_rows()
                        if op == "signer":
                            made.take_key(args[0])
                        else:
                            db, partition, previous, columns, signed = args
                            made.make(client, db, partition, previous, columns, signed)
                    except Exception as exc:
                        failed = _sendable(exc)
                continue
            if failed is not None:  # nothing after a failed insert: its error, to every call
                reply("err", failed)
                if op == "close":
                    return
                continue
            try:
                if op == "open":
                    client = connect(args[0])
                    reply("ok", None)
                elif op == "query":
                    sql, params, formats = args
                    found = client.query(sql, parameters=params, column_formats=formats)
                    reply("ok", list(found.result_rows))
                elif op == "command":
                    reply("ok", client.command(args[0]))
                elif op == "event_head":
                    head = None if made is None else made.heads.get((args[0], args[1]))
                    if head is None:
                        raise StoreError(
                            "the store's writer process made no events of partition "
                            f"{args[1]} in {args[0]}"
                        )
                    reply("ok", head)
                elif op == "raw":
                    reply("ok", client.raw_query(args[0], fmt=args[1]))
                elif op == "context":
                    context = client.create_insert_context(args[0], args[1])
                    reply("ok", [t.name for t in context.column_types])
                elif op == "contexts":
                    contexts = [client.create_insert_context(*wanted) for wanted in args[0]]
                    reply("ok", [[t.name for t in c.column_types] for c in contexts])
                elif op == "stream":
                    with client.query_rows_stream(args[0]) as stream:
                        chunk: list[Sequence[Any]] = []
                        for row in stream:
                            chunk.append(row)
                            if len(chunk) >= _STREAM_ROWS:
                                reply("rows", chunk)
                                chunk = []
                        if chunk:
                            reply("rows", chunk)
                    reply("end", None)
                elif op == "close":
                    closing, client = client, None
                    if closing is not None:
                        closing.close()
                    reply("ok", None)
                    return
                else:
                    raise StoreError(f"the store's writer process got an unknown call {op!r}")
            except Exception as exc:
                reply("err", _sendable(exc))
    finally:
        if client is not None:
            client.close()


def main(argv: Sequence[str]) -> None:
    fd, parent = int(argv[1]), int(argv[2])
    _die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the CLI decides, the child finishes its insert
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(Connection(fd))


if __name__ == "__main__":
    main(sys.argv)
