"""`tracker audit verify` and `tracker audit export` (issue 11, items 1 and 4; docs/audit.md).

Verify exits 0 with one summary line when every check passes; otherwise it prints the first
finding of each check (table, chain, position or id, what differs) and exits 1. A store written
before hash chains, a missing key or an unreadable bundle is the user's to fix: exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from config.holidays import official_calendar
from config.signing import Verifier, load_verifier, settings_verifier
from tracker import options
from tracker.audit import REBUILD, AuditData, verify
from tracker.audit_bundle import BundleError, export, load
from tracker.commands import Unit, Year
from tracker.errors import UserError
from tracker.whatif import open_event_log

audit_app = typer.Typer(
    help="Auditor tools: verify the ledger against the events, export an audit bundle.",
    no_args_is_help=True,
    add_completion=False,
)

PublicKey = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        metavar="FILE",
        help="The signing key's PUBLIC half (PEM), from a trusted source; never read from the "
        "store.",
        show_default="the public half of $TRACKER_SIGNING_KEY, else of <data>/signing.key",
    ),
]
Bundle = Annotated[
    Path | None,
    typer.Option(
        "--bundle",
        metavar="FILE",
        help="Verify this bundle of `tracker audit export` instead of a store.",
        show_default="the store",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit", rich_help_panel=options.AUDIT)


@audit_app.command("verify")
def cmd_verify(
    unit: Unit = None,
    year: Year = None,
    store: options.Store = None,
    public_key: PublicKey = None,
    bundle: Bundle = None,
    holidays: options.Holidays = None,
) -> int:
    """Recompute the hash chains, check the signatures, replay the events and compare the ledger.

    Exit 0: clean (one summary line). Exit 1: the first finding of each check, located.
    """
    verifier = _verifier(public_key)
    if bundle is not None:
        if store is not None:
            raise UserError("give --bundle or --store, not both")
        try:
            data = load(bundle)
        except BundleError as exc:
            raise UserError(str(exc)) from None
        if (unit, year) != (None, None) and (unit, year) != (data.unit, data.year):
            raise UserError(f"the bundle is of {data.unit} {data.year}")
        return _report(data, verifier)
    sink = open_event_log(options.store_dsn(store))
    try:
        config = sink.load_config()
        if config is None:
            raise UserError("the store holds no data yet: nothing to verify")
        if sink.predates_chains():
            raise UserError(f"the store predates hash chains (issue 11): {REBUILD}")
        registry, books = config
        calendar = official_calendar(options.holidays_file(holidays))
        ledger = sink.ledger(unit, year)
        heads = sink.chain_heads()
        events = sink.logged_events()
        try:
            data = AuditData(registry, books, calendar, events, ledger, heads, unit, year)
            return _report(data, verifier)
        finally:
            close = getattr(events, "close", None)  # the stream blocks the store's client
            if close is not None:
                close()
    finally:
        sink.close()


@audit_app.command("export")
def cmd_export(
    unit: Annotated[str, typer.Option("--unit", metavar="ID", help="The unit to export.")],
    year: Annotated[int, typer.Option("--year", metavar="N", help="The year to export.")],
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE", help="Where to write the bundle (a zip).")
    ],
    store: options.Store = None,
    holidays: options.Holidays = None,
) -> int:
    """Write a self-contained bundle (events, ledger, rulebooks, registry, signed heads) that
    `tracker audit verify --bundle` checks on another machine."""
    sink = open_event_log(options.store_dsn(store))
    try:
        if sink.predates_chains():
            raise UserError(f"the store predates hash chains (issue 11): {REBUILD}")
        counts = export(sink, unit, year, out, options.holidays_file(holidays))
    except BundleError as exc:
        raise UserError(str(exc)) from None
    finally:
        sink.close()
    print(
        f"audit: wrote {out}: {counts['events']} events, {counts['ledger']} ledger entries of "
        f"{unit} {year}, {counts['heads']} signed heads"
    )
    return 0


def _verifier(public_key: Path | None) -> Verifier:
    if public_key is not None:
        return load_verifier(public_key)
    found = settings_verifier(options.current())
    if found is None:
        raise UserError(
            "no key to verify with: give --public-key FILE (the PEM public key the operator "
            "handed you), or set TRACKER_SIGNING_KEY"
        )
    return found


def _report(data: AuditData, verifier: Verifier) -> int:
    report = verify(data, verifier)
    if report.clean:
        print(report.summary(verifier.fingerprint()))
        return 0
    print(f"audit: FAILED: {len(report.findings)} finding(s)")
    for finding in report.findings:
        print(f"  {finding.line()}")
    return 1
