"""`tracker generate` and `tracker demo`: the seeded province-scale demo, embedded or live."""

from __future__ import annotations

import argparse
from decimal import Decimal

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from engine.status import build_status
from schemas.points import format_points
from sinks import open_store
from sinks.dsn import mask
from tracker import tables
from tracker.commands import UserError
from tracker.ingest import ingest
from tracker.progress import track_items


def _years(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(y) for y in text.split(","))
    except ValueError:
        raise UserError(f"--years takes a comma-separated list of years, not {text!r}") from None


def cmd_generate(args: argparse.Namespace) -> int:
    from tracker import demo

    registry = load_registry(DEMO_REGISTRY)
    events = demo.generate(registry, seed=args.seed, years=_years(args.years), scale=args.scale)
    count = 0
    with args.out.open("w", encoding="utf-8") as out:
        for line in demo.lines(events, bad=demo.bad_lines(args.seed) if args.bad_lines else ()):
            out.write(line + "\n")
            count += 1
    print(f"wrote {count} lines to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if not args.embedded:
        from config.settings import data_dir
        from tracker.live_demo import EMBEDDED, run_live_demo

        code = run_live_demo(data_dir(), seed=args.seed, years=_years(args.years), scale=args.scale)
        if code != EMBEDDED:
            return code
    from tracker import demo

    registry = load_registry(DEMO_REGISTRY)
    books = dict(load_rulebooks())
    events = demo.generate(registry, seed=args.seed, years=_years(args.years), scale=args.scale)
    lines = list(track_items(demo.lines(events, bad=demo.bad_lines(args.seed)), label="generating"))
    print(f"demo: {len(lines)} events for {len(registry.units)} units, store {mask(args.store)}")
    sink = open_store(args.store)
    try:
        tracked = track_items(lines, label="ingesting", total=len(lines))
        summary = ingest(sink, registry, books, official_calendar(), tracked, "demo")
        print(
            f"ingested: accepted {summary.accepted}, rejected {summary.rejected}, "
            f"duplicates {summary.duplicates}\n"
        )
        rows = build_status(
            registry, books, sink.totals(), sink.deadlines(), sink.event_unit_years()
        )
    finally:
        sink.close()
    names = {u.id: u.name for u in registry.units}
    print("Units losing the most points, per rulebook (maximum points differ by tier):")
    table = []
    for book_id in sorted({r.rulebook for r in rows if r.rulebook}):
        ranked = sorted(
            (r for r in rows if r.rulebook == book_id and r.deducted),
            key=lambda r: (-r.deducted, r.unit),
        )
        table += [
            [
                book_id,
                r.unit,
                names[r.unit],
                format_points(r.deducted),
                format_points(sum((i.max for i in r.indicators), Decimal(0))),
                sum(d.status == "overdue" for d in r.deadlines),
            ]
            for r in ranked[:3]
        ]
    print(tables.render(["rulebook", "unit", "name", "deducted", "of", "overdue"], table))
    print(
        "\nNext: tracker status --unit fj.gat --year 2018 | tracker ledger --unit fj.gat "
        "| tracker deadlines --all | tracker rejects"
    )
    return 0
