"""`tracker audit verify` and `tracker audit export` (issue 11, items 1 and 4; docs/audit.md).

Verify exits 0 with one summary line when every check passes; otherwise it prints the first
finding of each check (table, chain, position or id, what differs) and exits 1. A store written
before hash chains, a missing key or an unreadable bundle is the user's to fix: exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tracker import options
from tracker.commands import Unit, Year

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
    from tracker.audit_run import run_verify

    return run_verify(unit, year, store, public_key, bundle, holidays)


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
    from tracker.audit_run import run_export

    return run_export(unit, year, out, store, holidays)
