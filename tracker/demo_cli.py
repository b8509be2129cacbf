"""`tracker generate` and `tracker demo`: the seeded province-scale demo, embedded or live."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from engine.status import build_status
from schemas.points import format_points
from sinks import open_store
from sinks.dsn import mask
from tracker import options, tables
from tracker.errors import UserError
from tracker.ingest import ingest
from tracker.progress import track_items


def _years(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(y) for y in text.split(","))
    except ValueError:
        raise UserError(f"--years takes a comma-separated list of years, not {text!r}") from None


Seed = Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the generator.")]
Years = Annotated[
    str, typer.Option("--years", metavar="Y,Y", help="Assessment years to generate events in.")
]
Scale = Annotated[
    float, typer.Option("--scale", min=0, metavar="X", help="Events per unit, times X.")
]


def cmd_generate(
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE.jsonl", help="Where to write the stream.")
    ],
    seed: Seed = 2018,
    years: Years = "2018,2020",
    scale: Scale = 1.0,
    bad_lines: Annotated[
        bool, typer.Option("--bad-lines", help="Mix in a few invalid lines.")
    ] = False,
) -> int:
    """Write the seeded province-scale demo stream as JSONL."""
    from tracker import demo

    registry = load_registry(DEMO_REGISTRY)
    events = demo.generate(registry, seed=seed, years=_years(years), scale=scale)
    count = 0
    with out.open("w", encoding="utf-8") as handle:
        for line in demo.lines(events, bad=demo.bad_lines(seed) if bad_lines else ()):
            handle.write(line + "\n")
            count += 1
    print(f"wrote {count} lines to {out}")
    return 0


def cmd_demo(
    embedded: Annotated[
        bool,
        typer.Option(
            "--embedded", help="Skip Kafka: ingest in-process (the default when Java is missing)."
        ),
    ] = False,
    store: options.Store = None,
    seed: Seed = 2018,
    years: Years = "2018,2020",
    scale: Scale = 1.0,
) -> int:
    """Generate the demo stream, ingest it, show the status."""
    from tracker import demo, demo_store

    dsn = options.store_dsn(store)
    registry = load_registry(DEMO_REGISTRY)
    events = demo.generate(registry, seed=seed, years=_years(years), scale=scale)
    bad = demo.bad_lines(seed)
    lines = list(track_items(demo.lines(events, bad=bad), label="generating"))
    ids = demo_store.demo_ids(lines, bad)  # what the demo logs: tracker/demo_store.py
    if not embedded:
        from tracker.live_demo import EMBEDDED, java_available, run_live_demo

        if java_available():  # else the embedded run below, which keeps the store as it is
            said = demo_store.live_demo_store(dsn, ids)
            if said:
                print(said)
        code = run_live_demo(options.current().data_dir, lines, store=dsn)
        if code != EMBEDDED:
            return code
    from config.signing import writer_signer

    books = dict(load_rulebooks())
    print(f"demo: {len(lines)} events for {len(registry.units)} units, store {mask(dsn)}")
    sink = open_store(dsn)
    try:
        shown = demo_store.embedded_demo_store(sink, dsn, ids)
        if shown is not None:
            print(shown + "\n")
        else:
            tracked = track_items(lines, label="ingesting", total=len(lines))
            signer = writer_signer(options.current())  # so that `tracker audit verify` passes
            summary = ingest(
                sink, registry, books, official_calendar(), tracked, "demo", signer=signer
            )
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
