"""`tracker ingest`: a JSONL file or stdin through the engine into the store, in-process.

A run first finishes what a stopped run left half-written (`Tracker.restore`, sinks/base.py),
then checks the registry against the store's events (tracker/registry_guard.py). See
docs/ingest.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from config.holidays import official_calendar
from config.registry import load_registry
from config.rulebooks import load_rulebooks
from config.signing import Signer, writer_signer
from engine import WorkCalendar
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks import Store, open_store
from sinks.dsn import mask
from tracker import options
from tracker.cli import hold
from tracker.errors import UserError
from tracker.lines import LinesRead
from tracker.pipeline import BATCH_SIZE, Summary, Tracker
from tracker.progress import file_size, track_lines
from tracker.registry_guard import check_registry_change
from tracker.tables import printable


def ingest(
    sink: Store,
    registry: Registry,
    books: dict[str, Rulebook],
    calendar: WorkCalendar,
    lines: Iterable[bytes | str] | LinesRead,
    origin: str,
    *,
    batch_size: int = BATCH_SIZE,
    replace_registry: bool = False,
    signer: Signer | None = None,
) -> Summary:
    """Apply `lines` through the engine into `sink`, continuing what it holds."""
    stored = sink.load_config()
    if stored is not None and not _same_config(stored, registry, books):
        # A run that stopped half-way is finished with the registry and rulebooks it began with,
        # so that its events' outputs are the ones it would have written.
        if sink.committed_seq() < sink.next_seq() - 1:
            Tracker(sink, *stored, calendar, batch_size=batch_size, signer=signer).restore()
        check_registry_change(sink, registry, replace=replace_registry)
    sink.save_config(registry, books)
    tracker = Tracker(sink, registry, books, calendar, batch_size=batch_size, signer=signer)
    tracker.restore()
    summary = tracker.feed_lines(lines, origin)
    # the next run starts from here rather than replaying the log (tracker/checkpoints.py)
    tracker.checkpoint()
    hold(tracker)  # a CLI process ends next: not freed object by object (tracker/cli.py)
    return summary


def _same_config(
    stored: tuple[Registry, dict[str, Rulebook]], registry: Registry, books: dict[str, Rulebook]
) -> bool:
    old_registry, old_books = stored
    used = {a.rulebook for a in registry.assessments}
    return old_registry == registry and all(
        books.get(book_id) == book for book_id, book in old_books.items() if book_id in used
    )


def cmd_ingest(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE.jsonl|-", help="Events, one JSON object a line; - reads stdin."
        ),
    ],
    units: options.Units = None,
    store: options.Store = None,
    rulebooks: options.Rulebooks = None,
    holidays: options.Holidays = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with a JSON summary line.")] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", metavar="N", help="Records per store write.")
    ] = BATCH_SIZE,
    writer: Annotated[
        str,
        typer.Option(
            "--writer",
            metavar="process|inline",
            help="An embedded store's inserts in a writer process of their own, or inline.",
            show_default="$TRACKER_WRITER, else process",
        ),
    ] = "",
    replace_registry: Annotated[
        bool,
        typer.Option(
            "--replace-registry",
            help="Accept a registry that drops units or assessments the store has events for.",
        ),
    ] = False,
) -> int:
    """Apply a JSONL file (or - for stdin) through the engine into the store.

    Exit 0 also when lines were rejected: they are dead letters (`tracker rejects`).
    """
    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    writer = writer or options.current().writer
    if writer not in ("process", "inline"):
        raise UserError(f"--writer must be process or inline, not {writer!r}")
    registry = load_registry(options.units_path(units))
    books = dict(load_rulebooks(options.rulebooks_dir(rulebooks)))
    calendar = official_calendar(options.holidays_file(holidays))
    dsn = options.store_dsn(store)
    stdin = file == "-"
    origin = "stdin" if stdin else Path(file).name
    # bytes, not text: a line that is not UTF-8 is one dead letter, not the end of the run
    with nullcontext(sys.stdin.buffer) if stdin else Path(file).open("rb") as lines:
        size = file_size(lines)
        read = LinesRead(
            track_lines(lines, label=f"ingest {origin}", total_bytes=size), origin, batch_size
        )
        # A file's lines are read ahead while the CLI waits for its writer process
        # (tracker/lines.py `LinesRead`); not a pipe's or a terminal's, where reading waits for
        # their writer in turn (a store's open would wait for the lines to come)
        sink = open_store(dsn, writer=writer, idle=None if size is None else read.read_some)
        try:
            summary = ingest(
                sink,
                registry,
                books,
                calendar,
                read,
                origin,
                batch_size=batch_size,
                replace_registry=replace_registry,
                signer=writer_signer(options.current()),
            )
        finally:
            sink.close()
    if as_json:
        print(json.dumps(summary.as_dict()))
    else:
        print(
            f"accepted {summary.accepted}, rejected {summary.rejected}, "
            f"duplicates {summary.duplicates}  (store: {printable(mask(dsn))})"
        )
    return 0
