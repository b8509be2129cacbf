"""`tracker`: ingest events, read status, ledger, deadlines and dead letters, run the live
pipeline, push the dashboards.

The command tree is a Typer app (tracker/cli_app.py); `main(argv)` runs it and returns the exit
code. Errors are one line on stderr, never a traceback ($TRACKER_DEBUG=1 shows it): `tracker:
error: ...` with exit 2 for what the user can fix (a usage error too), exit 1 for an internal
error, 130 for Ctrl-C and a quiet 141 when the reader of the output goes away (`tracker ledger |
head -1`).

This module is the entry point, and light: `tracker status` with plain options runs without
importing Typer at all (`status_options`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from config.collector import tune_gc as tune_gc  # also this module's interface (the benches)
from sinks.dsn import mask
from tracker.errors import UserError, user_errors
from tracker.instants import parse_instant
from tracker.tables import printable


def guarded(call: Callable[[], Any]) -> Any:
    """Run a command: what it raises becomes an exit code and at most one line (Typer's and
    Click's own exits and usage errors are raised on to `main`)."""
    try:
        with user_errors():
            return call()
    except UserError as exc:
        # a message can quote what the user gave or a file holds: shown, not obeyed
        _error(f"tracker: error: {exc}")
        return 2
    except BrokenPipeError:
        # The reader closed the pipe (`tracker ledger | head`): stop quietly, as a Unix
        # filter does. stdout goes to /dev/null so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a filter the pipe stopped
    except KeyboardInterrupt:
        print("tracker: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _typers(exc) or _debug():
            raise
        _error(f"tracker: internal error: {type(exc).__name__}: {exc}".splitlines()[0])
        return 1


def _typers(exc: Exception) -> bool:
    """Typer's and Click's own exits and usage errors, which `main` handles (raised on)."""
    typer = sys.modules.get("typer")
    if typer is None:
        return False  # not loaded: nothing raised them
    from typer._click.exceptions import ClickException

    return isinstance(exc, (typer.Exit, typer.Abort, ClickException))


def _error(line: str) -> None:
    print(printable(mask(line)), file=sys.stderr)


def _debug() -> bool:
    from tracker import options

    try:
        return options.current().debug
    except UserError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    tune_gc()
    args = list(sys.argv[1:] if argv is None else argv)
    # `tracker ingest` run as its own process: it ends without the teardown (`end_process`)
    ending = argv is None and args[:1] == ["ingest"]
    if ending:
        # Its state only grows until the process ends, and it makes no cyclic garbage per line
        # (tests/integration/test_ingest_garbage.py): the collector's young passes over that
        # state freed nothing, ~8% of a 200k-line run's CPU by a probe of them (BENCHMARKS.md).
        # Not its writer process, which makes cycles (the driver's), nor any other command.
        gc.disable()
        if ingest_writer_likely(args, os.environ):
            from sinks.writer_process import prestart

            prestart()  # beside the CLI's own start (~0.5 s of imports)
        global _held
        _held = []
    plain = status_options(args)
    if plain is None:
        from tracker.cli_app import run

        code = run(args)
        if ending:
            end_process(code)
        return code
    from tracker.status_cmd import show_status

    result = guarded(lambda: show_status(**plain))
    return result if isinstance(result, int) else 0


# What `tracker ingest`, run as its own process, keeps until the process ends (`hold`); None in
# any other run (a test's, a command run in a server), which frees everything as usual.
_held: list[object] | None = None


def hold(value: object) -> None:
    """Keep `value` (a tracker and its engine's state) until the process ends, where the
    process is about to end: freeing it object by object cost ~2% of an ingest's CPU, and the
    interpreter's teardown after it ~1.5% more (a 200k stream; more with more state)."""
    if _held is not None:
        _held.append(value)


def end_process(code: int) -> NoReturn:
    """End the process with `code` after the exit handlers and with its output flushed, without
    the interpreter's teardown: every object freed one by one, for nothing (`hold`). Only for a
    command that has finished its work: its store closed, its threads and children ended."""
    import atexit
    import logging

    atexit._run_exitfuncs()  # e.g. a progress display's cursor shown again
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken pipe: nothing to say it on
            stream.flush()
    os._exit(code)


def ingest_writer_likely(args: Sequence[str], env: Mapping[str, str]) -> bool:
    """Whether `args` look like a `tracker ingest` that will start its writer process (an
    embedded store, `--writer process`, the default): a guess made before Typer parses them, so
    that the process starts beside the CLI's imports (sinks/writer_process.py `prestart`). A
    wrong guess costs speed only: a process not taken ends with the CLI, one not started ahead
    is started when the store opens."""
    if args[:1] != ["ingest"]:
        return False
    writer, store = env.get("TRACKER_WRITER", ""), env.get("TRACKER_STORE", "")
    rest = list(args[1:])
    for i, token in enumerate(rest):
        name, equals, value = token.partition("=")
        if not equals:
            value = rest[i + 1] if i + 1 < len(rest) else ""
        if name == "--writer":
            writer = value
        elif name == "--store":
            store = value
    return writer.strip().lower() in ("", "process") and (not store or store.startswith("chdb:"))


# `tracker status` with plain options, read without Typer's parser: Typer checks every value
# through a pydantic adapter, and importing pydantic for that costs a read ~0.1 s of its start
# (BENCHMARKS.md, "As-of status"). Anything else, or anything unusual (--help, a repeated or
# unknown option, a value that starts with "-" or does not parse), goes to Typer, whose answer
# this must equal: tests/unit/test_cli_start.py parses a table of command lines both ways.
_STATUS_VALUES = {"--store": "store", "--unit": "unit", "--year": "year", "--as-of": "as_of"}
_YEAR = re.compile(r"[0-9]{1,9}")


def status_options(args: Sequence[str]) -> dict[str, Any] | None:
    """The keyword arguments of `cmd_status` for `args` (`status ...`), or None: ask Typer."""
    if args[:1] != ["status"]:
        return None
    given: dict[str, Any] = {"as_json": False}
    rest = list(args[1:])
    while rest:
        token = rest.pop(0)
        if token == "--json" and token not in given:
            given[token] = True
            given["as_json"] = True
            continue
        name, eq, value = token.partition("=")
        if name not in _STATUS_VALUES or name in given:
            return None
        if not eq:
            if not rest:
                return None
            value = rest.pop(0)
        if not value or value.startswith("-"):
            return None
        given[name] = value
    given.pop("--json", None)
    out: dict[str, Any] = {"as_json": given.pop("as_json")}
    for option, value in given.items():
        out[_STATUS_VALUES[option]] = value
    if "year" in out:
        if not _YEAR.fullmatch(out["year"]):
            return None
        out["year"] = int(out["year"])
    if "as_of" in out:
        try:
            parse_instant(out["as_of"])
        except ValueError:
            return None
    return {"store": None, "unit": None, "year": None, "as_of": None, **out}


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole command tree, built on first use (tracker/cli_app.py)
        from tracker.cli_app import full_app

        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
