"""`tracker`: ingest events, read status, ledger, deadlines and dead letters, run the live
pipeline, push the dashboards.

The command tree is a Typer app; `main(argv)` runs it and returns the exit code. Errors are one
line on stderr, never a traceback ($TRACKER_DEBUG=1 shows it): `tracker: error: ...` with exit 2
for what the user can fix (a usage error too), exit 1 for an internal error, 130 for Ctrl-C and
a quiet 141 when the reader of the output goes away (`tracker ledger | head -1`).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from sinks.dsn import mask
from tracker import (
    audit_cli,
    commands,
    demo_cli,
    ingest,
    ops_cli,
    options,
    post_cli,
    report,
    serve_cli,
    stream_cli,
)
from tracker.errors import UserError, user_errors
from tracker.tables import printable


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deduction-tracker")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class TrackerGroup(TyperGroup):
    """The root command: whatever a command raises becomes an exit code and at most one line
    (usage errors are Click's, raised on to `main`)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            with user_errors():
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, _click_exception()):
            raise
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
            if _debug():
                raise
            _error(f"tracker: internal error: {type(exc).__name__}: {exc}".splitlines()[0])
            return 1


def _click_exception() -> type[Exception]:
    from typer._click.exceptions import ClickException

    return ClickException


def _error(line: str) -> None:
    print(printable(mask(line)), file=sys.stderr)


def _debug() -> bool:
    try:
        return options.current().debug
    except UserError:
        return False


app = typer.Typer(
    name="tracker",
    cls=TrackerGroup,
    help="Deductions of the Fujian e-government security assessment, from an event stream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        print(f"tracker {_version()}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Ingest events, read status, ledger, deadlines and dead letters, run the live pipeline."""
    ctx.ensure_object(dict)


def _commands() -> None:
    read, live = options.INGEST_AND_READ, options.LIVE
    ops, demo = options.OPERATIONS, options.DEMO
    app.command("ingest", rich_help_panel=read)(ingest.cmd_ingest)
    app.command("status", rich_help_panel=read)(commands.cmd_status)
    app.command("ledger", rich_help_panel=read)(commands.cmd_ledger)
    app.command("deadlines", rich_help_panel=read)(commands.cmd_deadlines)
    app.command("rejects", rich_help_panel=read)(commands.cmd_rejects)
    app.add_typer(commands.rulebooks_app, name="rulebooks", rich_help_panel=read)
    app.command("post", rich_help_panel=live)(post_cli.cmd_post)
    app.command("worker", rich_help_panel=live)(stream_cli.cmd_worker)
    app.command("ticker", rich_help_panel=live)(stream_cli.cmd_ticker)
    app.command("replay", rich_help_panel=live)(stream_cli.cmd_replay)
    app.add_typer(stream_cli.kafka_app, name="kafka", rich_help_panel=live)
    app.add_typer(ops_cli.dashboards_app, name="dashboards", rich_help_panel=ops)
    app.command("access", rich_help_panel=ops)(ops_cli.cmd_access)
    serve_cli.register(app)
    app.command("report", rich_help_panel=options.AUDIT)(report.cmd_report)
    audit_cli.register(app)
    app.command("demo", rich_help_panel=demo)(demo_cli.cmd_demo)
    app.command("generate", rich_help_panel=demo)(demo_cli.cmd_generate)


_commands()


def tune_gc() -> None:
    """The engine allocates a few small objects per event; with the default gen-0 threshold (700)
    the cyclic collector runs every few dozen events and costs ~20% of ingest. Long-lived state is
    frozen out of the young generations, and collections happen every 100k allocations instead."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def main(argv: Sequence[str] | None = None) -> int:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    tune_gc()
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="tracker", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a bare `tracker` or group: the help is printed
        if exc.format_message():
            print(exc.format_message(), file=sys.stderr)
        return 2
    except ClickException as exc:
        hint = ""
        if getattr(exc, "ctx", None) is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"  # type: ignore[attr-defined]
        _error(f"tracker: error: {exc.format_message()}{hint}")
        return exc.exit_code
    except typer.Abort:
        print("tracker: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
