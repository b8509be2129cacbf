"""`tracker report`: one unit's year as a self-contained HTML page for an auditor, and a PDF of it.

The page holds everything inline (CSS, SVG, no script, fonts from the system), so it can be
mailed, archived and opened offline. It reads only through the `StoreReader` port and the
registry and rulebooks recorded in the store, so it works on chDB, a ClickHouse server or a
worker's web views alike; its totals are `engine.status.build_status`'s, the numbers of
`tracker status`. The PDF is the page printed by headless Chromium (`--print-to-pdf`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from engine.clock import iso, local, year_start
from engine.status import build_status
from schemas.ledger import DeadlineState, LedgerEntry, UnitYearStatus
from schemas.points import format_points
from schemas.registry import Registry
from schemas.rulebook import Indicator, Rulebook
from sinks import StoreReader
from tracker import options
from tracker.commands import open_for_reading
from tracker.errors import UserError
from tracker.report_chart import STATUS_COLOURS, Drawing, draw
from tracker.report_series import IndicatorLine, remaining_series

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
PDF_TIMEOUT_S = 120


@dataclass(frozen=True, slots=True)
class Row:
    """One ledger entry as the report's deductions table shows it."""

    entry: LedgerEntry
    indicator_name: str
    clause: str
    caps: tuple[str, ...]
    events: tuple[str, ...]  # each event id, with what the report knows of it
    reversed_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Report:
    unit: str
    unit_name: str
    year: int
    status: UnitYearStatus
    book: Rulebook | None
    rows: tuple[Row, ...]
    deadlines: tuple[DeadlineState, ...]
    drawing: Drawing
    watermark: str | None


def gather(reader: StoreReader, unit: str, year: int) -> Report:
    config = reader.load_config()
    if config is None:
        raise UserError("the store holds no data yet: run `tracker ingest` first")
    registry, books = config
    found = registry.unit(unit)
    if found is None:
        raise UserError(f"unknown unit {unit!r}: not in the registry recorded in the store")
    deadlines = reader.deadlines(unit=unit, year=year)
    rows = build_status(
        registry,
        books,
        reader.totals(),
        deadlines,
        reader.event_unit_years(),
        unit=unit,
        year=year,
    )
    if not rows:
        raise UserError(f"{unit} has no assessment and no events in {year}")
    status = rows[0]
    entries = reader.ledger(unit=unit, year=year)
    watermark = reader.watermark()
    book = books.get(status.rulebook) if status.rulebook is not None else None
    deadlines = sorted(deadlines, key=lambda d: (d.noticed_at, d.ref))
    lines = [IndicatorLine(i.id, i.name, i.max) for i in status.indicators]
    start = year_start(year)
    series = remaining_series(entries, lines, start=start)
    return Report(
        unit=unit,
        unit_name=found.name,
        year=year,
        status=status,
        book=book,
        rows=_rows(entries, books, deadlines, registry),
        deadlines=tuple(deadlines),
        drawing=draw(series, deadlines, start, year_start(year + 1)),
        watermark=iso(watermark) if watermark is not None else None,
    )


def _rows(
    entries: Sequence[LedgerEntry],
    books: dict[str, Rulebook],
    deadlines: Sequence[DeadlineState],
    registry: Registry,
) -> tuple[Row, ...]:
    notices = {d.event_id: d for d in deadlines}
    reversed_by: dict[str, list[str]] = {}
    for e in entries:
        if e.reverses is not None:
            reversed_by.setdefault(e.reverses, []).append(e.entry_id)
    out = []
    for e in entries:
        name, clause = e.indicator, ""
        caps: tuple[str, ...] = ()
        book = books.get(e.rulebook)
        ind = next((i for i in book.indicators if i.id == e.indicator), None) if book else None
        if ind is not None:
            name = ind.name
            item = next((i for i in ind.items if i.number == e.item), None)
            clause = item.clause if item is not None else ""
            caps = _caps(ind, e.item, item.cap_points if item is not None else None)
        out.append(
            Row(
                entry=e,
                indicator_name=name,
                clause=clause,
                caps=caps,
                events=tuple(_event_text(eid, e, notices, registry) for eid in e.event_ids),
                reversed_by=tuple(reversed_by.get(e.entry_id, ())),
            )
        )
    return tuple(out)


def _caps(ind: Indicator, number: str, item_cap: Decimal | None) -> tuple[str, ...]:
    """The caps that bound an item (contract 5.5): its own, the shared ones, the indicator's."""
    caps = []
    if item_cap is not None:
        caps.append(f"item cap {format_points(item_cap)}")
    for shared in ind.shared_caps:
        if number in shared.items:
            caps.append(
                f"shared cap {format_points(shared.cap_points)} (items {', '.join(shared.items)})"
            )
    caps.append(f"indicator max {format_points(ind.max_points)}")
    return tuple(caps)


def _event_text(
    event_id: str, entry: LedgerEntry, notices: dict[str, DeadlineState], registry: Registry
) -> str:
    """The event id, and what the store says of it without reading the event log: the notice
    it posted (ref, time) and the unit it came from when that is not the assessed unit."""
    parts = [event_id]
    notice = notices.get(event_id)
    if notice is not None:
        parts.append(f"{notice.ref} {shown(notice.noticed_at)}")
    if entry.source_unit != entry.unit and event_id == entry.event_ids[0]:
        source = registry.unit(entry.source_unit)
        parts.append(f"from {entry.source_unit}" + (f" {source.name}" if source else ""))
    return " · ".join(parts)


def shown(at: datetime) -> str:
    """An instant as a person reads it in a table: Asia/Shanghai, the offset in the header."""
    return local(at).strftime("%Y-%m-%d %H:%M:%S")


def render(report: Report) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined  # only `report` needs it

    env = Environment(
        loader=PackageLoader("tracker", "templates"),
        autoescape=True,  # every value: unit names, clauses, reasons and ids come from outside
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["points"] = format_points
    env.filters["iso"] = iso
    env.filters["shown"] = shown
    template = env.get_template("report.html.j2")
    return template.render(r=report, status_colours=STATUS_COLOURS)


def chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html: Path, pdf: Path) -> None:
    """Print the page with headless Chromium; it makes no request (the page is self-contained)
    and runs with a throwaway profile."""
    exe = chromium()
    if exe is None:
        raise UserError(
            f"--pdf needs chromium, which is not installed (Debian: apt-get install chromium "
            f"fonts-noto-cjk); the HTML is in {html}"
        )
    pdf = pdf.resolve()
    pdf.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="tracker-pdf-") as profile:
        argv = [
            exe,
            "--headless",
            "--no-sandbox",  # tests and containers run as root, where the sandbox cannot start
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-pdf-header-footer",
            f"--user-data-dir={profile}",
            f"--print-to-pdf={pdf}",
            html.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=PDF_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise UserError(f"chromium did not print the PDF within {PDF_TIMEOUT_S} s") from None
    if done.returncode != 0 or not pdf.exists():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"chromium could not print {pdf}: {last}")


def cmd_report(
    unit: Annotated[str, typer.Option("--unit", metavar="ID", help="The assessed unit.")],
    year: Annotated[int, typer.Option("--year", metavar="N", help="The assessment year.")],
    store: options.Store = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE.html",
            help="Where to write the page.",
            show_default="report-ID-N.html",
        ),
    ] = None,
    pdf: Annotated[
        Path | None,
        typer.Option(
            "--pdf",
            metavar="FILE.pdf",
            help="Also print the page to this PDF (needs chromium).",
            show_default="no PDF",
        ),
    ] = None,
) -> int:
    """One unit's year for an auditor: points over time, deadlines, every deduction with its
    clause, as a self-contained HTML page (and a PDF)."""
    reader = open_for_reading(options.store_dsn(store))
    try:
        report = gather(reader, unit, year)
    finally:
        reader.close()
    html = out or Path(f"report-{unit}-{year}.html")
    html.write_text(render(report), encoding="utf-8")
    print(f"report: {html}")
    if pdf is not None:
        print_pdf(html, pdf)
        print(f"report: {pdf}")
    return 0
