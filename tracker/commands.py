"""What each `tracker` command does; thin over the pipeline, the store and the status builder."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from config.holidays import HolidayFileError
from config.registry import ConfigFileError
from config.rulebooks import RulebookError, load_rulebooks
from engine import ConfigError
from engine.clock import iso, local
from engine.status import build_status
from schemas.points import format_points
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks import StoreError, StoreReader, open_store
from sinks.dsn import NoStoreError, StoreHeldError
from tracker import tables
from tracker.registry_guard import RegistryChangeError


class UserError(Exception):
    """Something the user can fix; printed as one line."""


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except (
        StoreError,
        ConfigFileError,
        RulebookError,
        HolidayFileError,
        ConfigError,
        RegistryChangeError,
    ) as exc:
        raise UserError(str(exc)) from None
    except BrokenPipeError:
        raise  # the reader of our output went away (`tracker ledger | head`): not an error
    except OSError as exc:
        raise UserError(f"{exc.filename or ''}: {exc.strerror}".lstrip(": ")) from None


def run(args: argparse.Namespace) -> int:
    with user_errors():
        handler = getattr(args, "handler", None) or globals()[f"cmd_{args.command}"]
        result: int = handler(args)
        return result


def open_for_reading(dsn: str) -> StoreReader:
    """An existing store only (a read creates nothing anywhere), and through the web views of
    the worker that holds it when that is an embedded store: an embedded chDB directory can be
    open in one process only."""
    from sinks.remote import connect_worker, held_by_another_process

    try:
        if held_by_another_process(dsn):
            return connect_worker(dsn)
        try:
            return open_store(dsn, create=False)
        except StoreHeldError:  # a worker took the directory between the check and the open
            return connect_worker(dsn)
    except NoStoreError as exc:
        raise UserError(
            f"{exc}; `tracker ingest` or `tracker worker` creates a store (or give --store)"
        ) from None


def _config(sink: StoreReader) -> tuple[Registry, dict[str, Rulebook]]:
    config = sink.load_config()
    if config is None:
        raise UserError("the store holds no data yet: run `tracker ingest` first")
    return config


# -- reading -----------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    sink = open_for_reading(args.store)
    try:
        registry, books = _config(sink)
        rows = build_status(
            registry,
            books,
            sink.totals(),
            sink.deadlines(unit=args.unit, year=args.year),
            sink.event_unit_years(),
            unit=args.unit,
            year=args.year,
        )
    finally:
        sink.close()
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], ensure_ascii=False))
        return 0
    if args.unit is None:
        names = {u.id: u.name for u in registry.units}
        print(
            tables.render(
                ["unit", "name", "year", "rulebook", "deducted", "open", "overdue"],
                [
                    [
                        r.unit,
                        names.get(r.unit, ""),
                        r.year,
                        r.rulebook or "-",
                        format_points(r.deducted),
                        sum(d.status == "open" for d in r.deadlines),
                        sum(d.status == "overdue" for d in r.deadlines),
                    ]
                    for r in rows
                    if r.rulebook or r.deadlines
                ],
            )
        )
        return 0
    for r in rows:
        print(
            tables.printable(
                f"{r.unit} {r.year}  rulebook {r.rulebook or '-'}  "
                f"deducted {format_points(r.deducted)}"
            )
        )
        if r.indicators:
            print(
                tables.render(
                    ["indicator", "name", "max", "deducted", "remaining"],
                    [
                        [
                            i.id,
                            i.name,
                            format_points(i.max),
                            format_points(i.deducted),
                            format_points(i.remaining),
                        ]
                        for i in r.indicators
                    ],
                )
            )
        if r.deadlines:
            print(
                tables.render(
                    ["ref", "due", "status", "notice's own due"],
                    [[d.ref, d.due, d.status, d.notice_due or ""] for d in r.deadlines],
                )
            )
        print()
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    sink = open_for_reading(args.store)
    try:
        _, books = _config(sink)
        entries = sink.ledger(unit=args.unit, year=args.year)
    finally:
        sink.close()
    if args.json:
        for e in entries:
            print(e.model_dump_json())
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
                "reason",
                "clause",
            ],
            rows,
            max_col=48,
        )
    )
    return 0


def cmd_deadlines(args: argparse.Namespace) -> int:
    sink = open_for_reading(args.store)
    try:
        states = sink.deadlines(unit=args.unit, year=args.year)
        now = local(datetime.fromisoformat(args.now)) if args.now else sink.watermark()
    finally:
        sink.close()
    if not args.all:
        states = [d for d in states if d.status in ("open", "overdue")]
    states.sort(key=lambda d: (d.due, d.unit, d.ref))
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in states], ensure_ascii=False))
        return 0
    if now is not None:
        print(f"time left counted from {iso(now)} (event clock of the store; --now to change)")
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


def cmd_rejects(args: argparse.Namespace) -> int:
    sink = open_for_reading(args.store)
    try:
        letters = sink.dead_letters(limit=args.limit)
    finally:
        sink.close()
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in letters], ensure_ascii=False))
        return 0
    print(
        tables.render(
            ["received", "origin", "reason", "raw"],
            [[iso(d.received_at), d.origin, d.reason, d.raw] for d in letters],
        )
    )
    return 0


def cmd_rulebooks(args: argparse.Namespace) -> int:
    books = load_rulebooks(args.dir)
    if args.action == "list":
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
    book = books.get(args.id)
    if book is None:
        raise UserError(f"unknown rulebook {args.id!r} (known: {', '.join(books)})")
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
