"""What each reading `tracker` command does; thin over the store and the status builder.

`status`, `ledger`, `deadlines`, `rejects` and the `rulebooks` group; tracker/cli.py puts them
in the command tree. Each returns the exit code and raises `UserError` for what the user can fix.

The engine, the contract models and the store modules are imported where they are used:
`tracker status` on a ClickHouse store needs none of them (sinks/clickhouse_status.py), and a
process's start is most of its time (tests/unit/test_cli_start.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sinks.dsn import NoStoreError, StoreHeldError
from tracker import options, tables
from tracker.errors import UserError, user_errors
from tracker.status_cmd import no_store

if TYPE_CHECKING:
    from schemas.ledger import LedgerEntry
    from schemas.registry import Registry
    from schemas.rulebook import Rulebook
    from sinks import StoreReader

__all__ = ["UserError", "open_for_reading", "user_errors"]

Unit = Annotated[
    str | None,
    typer.Option("--unit", metavar="ID", help="Only this unit.", show_default="every unit"),
]
Year = Annotated[
    int | None,
    typer.Option("--year", metavar="N", help="Only this year.", show_default="every year"),
]


def open_for_reading(dsn: str) -> StoreReader:
    """An existing store only (a read creates nothing anywhere), and through the web views of
    the worker that holds it when that is an embedded store: an embedded chDB directory can be
    open in one process only."""
    from sinks import open_store
    from sinks.remote import connect_worker, held_by_another_process

    try:
        if held_by_another_process(dsn):
            return connect_worker(dsn)
        try:
            return open_store(dsn, create=False)
        except StoreHeldError:  # a worker took the directory between the check and the open
            return connect_worker(dsn)
    except NoStoreError as exc:
        raise no_store(exc) from None


def recorded_config(reader: StoreReader) -> tuple[Registry, dict[str, Rulebook]]:
    config = reader.load_config()
    if config is None:
        raise UserError("the store holds no data yet: run `tracker ingest` first")
    return config


# -- reading -----------------------------------------------------------------------------------


def cmd_status(
    store: options.Store = None,
    unit: Unit = None,
    year: Year = None,
    as_json: options.Json = False,
    as_of: options.AsOf = None,
) -> int:
    """Points left per unit and year."""
    from tracker.status_cmd import show_status

    return show_status(store, unit, year, as_json, as_of)


def cmd_ledger(
    store: options.Store = None,
    unit: Unit = None,
    year: Year = None,
    as_json: options.Json = False,
    as_of: options.AsOf = None,
) -> int:
    """Every deduction of a unit with its clause."""
    from engine.clock import iso
    from schemas.envelope import UNKNOWN_POSTER
    from schemas.points import format_points

    at = options.instant(as_of)
    reader = open_for_reading(options.store_dsn(store))
    try:
        _, books = recorded_config(reader)
        if at is not None:
            entries = reader.as_of(at).ledger(unit, year)
        else:
            entries = reader.ledger(unit=unit, year=year)
        posters = reader.posters([i for e in entries for i in e.event_ids])
    finally:
        reader.close()

    def posted_by(e: LedgerEntry) -> list[str]:
        """Who posted each of the entry's events, in their order ("": unknown)."""
        return [posters.get(i, (UNKNOWN_POSTER,))[0] for i in e.event_ids]

    if as_json:
        for e in entries:
            # the entry's own JSON, then `posted_by` aligned with `event_ids` (docs/ingest.md)
            shown = json.dumps(posted_by(e), ensure_ascii=False, separators=(",", ":"))
            print(f'{e.model_dump_json()[:-1]},"posted_by":{shown}}}')
        return 0
    clauses = {
        (b.id, ind.id, item.number): item.clause
        for b in books.values()
        for ind in b.indicators
        for item in ind.items
    }
    rows = []
    for e in entries:
        state = "reversal" if e.reverses else ("capped" if e.capped else "")
        rows.append(
            [
                e.unit,
                e.year,
                e.seq,
                iso(e.effective_at),
                f"{e.indicator}#{e.item}",
                format_points(e.requested),
                format_points(e.applied),
                state,
                ",".join(e.event_ids),
                ",".join(p or "-" for p in posted_by(e)),
                e.reason,
                clauses.get((e.rulebook, e.indicator, e.item), ""),
            ]
        )
    print(
        tables.render(
            [
                "unit",
                "year",
                "seq",
                "effective",
                "item",
                "requested",
                "applied",
                "state",
                "events",
                "posted by",
                "reason",
                "clause",
            ],
            rows,
            max_col=48,
        )
    )
    return 0


def cmd_deadlines(
    store: options.Store = None,
    unit: Unit = None,
    year: Year = None,
    as_json: options.Json = False,
    include_all: Annotated[
        bool, typer.Option("--all", help="Also the met, late and withdrawn ones.")
    ] = False,
    now_text: Annotated[
        str | None,
        typer.Option(
            "--now",
            metavar="RFC3339",
            help="Instant to count the time left from.",
            show_default="the store's event clock, or --as-of",
        ),
    ] = None,
    as_of: options.AsOf = None,
) -> int:
    """Open and overdue notices with the time left."""
    from engine.clock import iso, local

    try:
        at = local(datetime.fromisoformat(now_text)) if now_text else None
    except ValueError:
        raise typer.BadParameter(
            f"{now_text!r} is not an RFC 3339 time", param_hint="--now"
        ) from None
    then = options.instant(as_of)
    now: datetime | None
    reader = open_for_reading(options.store_dsn(store))
    try:
        if then is not None:
            # the deadlines as they stood then, their time left counted from then
            states = reader.as_of(then).deadlines(unit, year)
            now = at or local(then)
        else:
            states = reader.deadlines(unit=unit, year=year)
            now = at or reader.watermark()
    finally:
        reader.close()
    if not include_all:
        states = [d for d in states if d.status in ("open", "overdue")]
    states.sort(key=lambda d: (d.due, d.unit, d.ref))
    if as_json:
        print(json.dumps([d.model_dump(mode="json") for d in states], ensure_ascii=False))
        return 0
    if now is not None:
        clock = "--as-of" if then is not None and at is None else "event clock of the store"
        print(f"time left counted from {iso(now)} ({clock}; --now to change)")
    rows = []
    for d in states:
        left = _time_left(d.due, now) if d.status == "open" and now is not None else ""
        own = iso(d.notice_due) if d.notice_due is not None else ""
        rows.append([d.unit, d.ref, d.kind, iso(d.noticed_at), iso(d.due), d.status, left, own])
    header = ["unit", "ref", "kind", "noticed", "due", "status", "time left", "notice's own due"]
    print(tables.render(header, rows))
    return 0


def _time_left(due: datetime, now: datetime) -> str:
    seconds = int((due - now).total_seconds())
    if seconds < 0:
        return "past due"
    days, rest = divmod(seconds, 86400)
    return f"{days}d {rest // 3600}h"


def cmd_rejects(
    store: options.Store = None,
    limit: Annotated[
        int,
        typer.Option("--limit", min=0, metavar="N", help="At most this many, the newest (0: all)."),
    ] = 50,
    as_json: options.Json = False,
) -> int:
    """Dead letters with their reasons."""
    from engine.clock import iso

    reader = open_for_reading(options.store_dsn(store))
    try:
        letters = reader.dead_letters(limit=limit)
    finally:
        reader.close()
    if as_json:
        print(json.dumps([d.model_dump(mode="json") for d in letters], ensure_ascii=False))
        return 0
    print(
        tables.render(
            ["received", "posted by", "origin", "reason", "raw"],
            [[iso(d.received_at), d.posted_by or "-", d.origin, d.reason, d.raw] for d in letters],
        )
    )
    return 0


rulebooks_app = typer.Typer(
    help="List or show the transcribed rulebooks.", no_args_is_help=True, add_completion=False
)
# `--dir` was this group's name for the folder every other command calls `--rulebooks`
OldDir = Annotated[Path | None, typer.Option("--dir", metavar="DIR", hidden=True)]


@rulebooks_app.callback()
def rulebooks_group(
    ctx: typer.Context, folder: options.Rulebooks = None, old_dir: OldDir = None
) -> None:
    """List or show the transcribed rulebooks."""
    ctx.ensure_object(dict)["rulebooks"] = folder or old_dir


def _books(ctx: typer.Context, folder: Path | None) -> dict[str, Rulebook]:
    from config.rulebooks import load_rulebooks

    given = folder or (ctx.obj or {}).get("rulebooks")
    return dict(load_rulebooks(options.rulebooks_dir(given)))


@rulebooks_app.command("list")
def cmd_rulebooks_list(ctx: typer.Context, folder: options.Rulebooks = None) -> int:
    """One line per rulebook."""
    books = _books(ctx, folder)
    print(
        tables.render(
            ["id", "year", "tier", "indicators", "items", "title"],
            [
                [
                    b.id,
                    b.year,
                    b.tier,
                    len(b.indicators),
                    sum(len(i.items) for i in b.indicators),
                    b.title,
                ]
                for b in books.values()
            ],
        )
    )
    return 0


@rulebooks_app.command("show")
def cmd_rulebooks_show(
    ctx: typer.Context,
    book_id: Annotated[str, typer.Argument(metavar="ID", help="The rulebook's id (see `list`).")],
    folder: options.Rulebooks = None,
) -> int:
    """Every indicator, item and rule of one rulebook."""
    from schemas.points import format_points

    books = _books(ctx, folder)
    book = books.get(book_id)
    if book is None:
        raise UserError(f"unknown rulebook {book_id!r} (known: {', '.join(books)})")
    print(
        tables.printable(
            f"{book.id}  {book.title}  ({book.tier}, {book.year}; "
            f"{book.source.seed}: {book.source.where})"
        )
    )
    for ind in book.indicators:
        print()
        print(tables.printable(f"{ind.id}  {ind.name}  max {format_points(ind.max_points)}"))
        rows = []
        for item in ind.items:
            for rule in item.rules:
                rows.append(
                    [
                        item.number,
                        rule.key,
                        format_points(rule.points),
                        rule.counting,
                        rule.scope,
                        format_points(item.cap_points) if item.cap_points else "-",
                        _deadline(rule),
                        item.clause,
                    ]
                )
        if rows:
            print(
                tables.render(
                    [
                        "item",
                        "rule",
                        "points",
                        "counting",
                        "scope",
                        "item cap",
                        "deadline",
                        "clause",
                    ],
                    rows,
                    max_col=70,
                )
            )
        for cap in ind.shared_caps:
            print(
                tables.printable(
                    f"  shared cap {cap.id}: {format_points(cap.cap_points)} "
                    f"over items {', '.join(cap.items)}"
                )
            )
        for un in ind.unruled:
            line = f"  item {un.number} (no rule: {un.why}) {tables.clip(un.clause, 60)}"
            print(tables.printable(line))
    return 0


def _deadline(rule: Any) -> str:
    return "-" if rule.deadline is None else str(rule.deadline.describe())
