"""`tracker`: ingest events, read status, ledger, deadlines and dead letters, inspect rulebooks.

Errors are one line on stderr with a non-zero exit, never a traceback (TRACKER_DEBUG=1 shows it).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from config.settings import default_store
from sinks.dsn import mask
from tracker import commands, demo_cli, ingest, ops_cli, stream_cli
from tracker.pipeline import BATCH_SIZE
from tracker.tables import printable


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deduction-tracker")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracker", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tracker {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def store_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--store",
            default=None,
            metavar="DSN",
            help="chdb:///DIR or http(s)://HOST:8123/?database=NAME "
            "(default: $TRACKER_STORE or the embedded chDB under $TRACKER_DATA, ./.data)",
        )

    p = sub.add_parser("ingest", help="apply a JSONL file (or - for stdin) through the engine")
    p.set_defaults(handler=ingest.cmd_ingest)
    p.add_argument("--units", required=True, type=Path, metavar="UNITS.yaml")
    store_arg(p)
    p.add_argument(
        "--rulebooks",
        type=Path,
        default=None,
        metavar="DIR",
        help="rulebook directory (default: the shipped rulebooks)",
    )
    p.add_argument(
        "--holidays",
        type=Path,
        default=None,
        metavar="FILE",
        help="holiday list for years the official calendar data does not know",
    )
    p.add_argument("--json", action="store_true", help="end with a JSON summary line")
    p.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE,
        metavar="N",
        help=f"records per store write (default {BATCH_SIZE})",
    )
    p.add_argument(
        "--replace-registry",
        action="store_true",
        help="accept a registry that drops units or assessments the store has events for",
    )
    p.add_argument("file", metavar="FILE.jsonl|-")

    for name, helptext in (
        ("status", "points left per unit and year"),
        ("ledger", "every deduction of a unit with its clause"),
        ("deadlines", "open and overdue notices with time left"),
    ):
        p = sub.add_parser(name, help=helptext)
        store_arg(p)
        p.add_argument("--unit", default=None, metavar="ID")
        p.add_argument("--year", type=int, default=None)
        p.add_argument("--json", action="store_true")
        if name == "deadlines":
            p.add_argument("--all", action="store_true", help="also met, late and withdrawn ones")
            p.add_argument(
                "--now",
                default=None,
                metavar="RFC3339",
                help="instant to count time left from (default: the store's event clock)",
            )

    p = sub.add_parser("rejects", help="dead letters with their reasons")
    store_arg(p)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("rulebooks", help="list or show the transcribed rulebooks")
    p.add_argument("--dir", type=Path, default=None, metavar="DIR")
    rb = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    rb.add_parser("list", help="one line per rulebook")
    show = rb.add_parser("show", help="every indicator, item and rule of one rulebook")
    show.add_argument("id")

    p = sub.add_parser("generate", help="write the seeded province-scale demo stream as JSONL")
    p.set_defaults(handler=demo_cli.cmd_generate)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=2018)
    p.add_argument("--years", default="2018,2020")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--bad-lines", action="store_true", help="mix in a few invalid lines")

    p = sub.add_parser("demo", help="generate the demo stream, ingest it, show the status")
    p.set_defaults(handler=demo_cli.cmd_demo)
    p.add_argument(
        "--embedded",
        action="store_true",
        help="skip Kafka: ingest in-process (the default when Java is missing)",
    )
    store_arg(p)
    p.add_argument("--seed", type=int, default=2018)
    p.add_argument("--years", default="2018,2020")
    p.add_argument("--scale", type=float, default=1.0)
    ops_cli.register(sub)
    stream_cli.register(sub)
    return parser


def tune_gc() -> None:
    """The engine allocates a few small objects per event; with the default gen-0 threshold (700)
    the cyclic collector runs every few dozen events and costs ~20% of ingest. Long-lived state is
    frozen out of the young generations, and collections happen every 100k allocations instead."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def main(argv: Sequence[str] | None = None) -> int:
    tune_gc()
    args = build_parser().parse_args(argv)
    if getattr(args, "store", "") is None:
        args.store = default_store()
    try:
        return commands.run(args)
    except commands.UserError as exc:
        # a message can quote what the user gave or a file holds: shown, not obeyed
        print(f"tracker: error: {printable(mask(str(exc)))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader closed the pipe (`tracker ledger | head`): stop quietly, as a Unix filter
        # does. stdout goes to /dev/null so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a filter the pipe stopped
    except KeyboardInterrupt:
        print("tracker: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("TRACKER_DEBUG"):
            raise
        print(
            printable(
                mask(f"tracker: internal error: {type(exc).__name__}: {exc}".splitlines()[0])
            ),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
