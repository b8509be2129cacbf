"""`python -m streams COMMAND ...`: the streaming commands of `tracker` on their own (the same
parser and handlers as `tracker kafka|post|worker|ticker|replay`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tracker.cli import tune_gc
from tracker.commands import UserError
from tracker.stream_cli import register


def main(argv: Sequence[str] | None = None) -> int:
    tune_gc()  # as `tracker` does: the engine allocates a few objects per event
    parser = argparse.ArgumentParser(prog="python -m streams", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register(sub)
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except UserError as exc:
        print(f"tracker: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tracker: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("TRACKER_DEBUG"):
            raise
        print(
            f"tracker: internal error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
