"""The `tracker` command tree, a Typer app (tracker/cli.py runs it): the root with its `--version`,
the help groups, and every command of the modules that hold them.

A read (`tracker status|ledger|deadlines|rejects ...`) builds a tree of the read commands only,
so that it does not import the modules of every other command (the ingest driver, Kafka, the web
service, the demo) before it starts; a command's own help and errors do not depend on its
siblings, so they read the same either way (tests/unit/test_cli_start.py).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from tracker import options
from tracker.cli import _error, guarded

READ_COMMANDS = ("status", "ledger", "deadlines", "rejects")


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
        return guarded(lambda: super(TrackerGroup, self).invoke(ctx))


def _new_app() -> typer.Typer:
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
    app.callback()(root)
    return app


def _show_version(value: bool) -> None:
    if value:
        print(f"tracker {_version()}")
        raise typer.Exit()


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


def _read_commands(app: typer.Typer) -> typer.Typer:
    from tracker import commands

    read = options.INGEST_AND_READ
    app.command("status", rich_help_panel=read)(commands.cmd_status)
    app.command("ledger", rich_help_panel=read)(commands.cmd_ledger)
    app.command("deadlines", rich_help_panel=read)(commands.cmd_deadlines)
    app.command("rejects", rich_help_panel=read)(commands.cmd_rejects)
    return app


def _ingest_command(app: typer.Typer) -> typer.Typer:
    from tracker import ingest

    app.command("ingest", rich_help_panel=options.INGEST_AND_READ)(ingest.cmd_ingest)
    return app


def _all_commands(app: typer.Typer) -> typer.Typer:
    from tracker import (
        audit_cli,
        commands,
        demo_cli,
        kafka_cli,
        ops_cli,
        post_cli,
        report,
        serve_cli,
        stream_cli,
    )

    read, live = options.INGEST_AND_READ, options.LIVE
    ops, demo = options.OPERATIONS, options.DEMO
    _ingest_command(app)
    _read_commands(app)
    app.add_typer(commands.rulebooks_app, name="rulebooks", rich_help_panel=read)
    app.command("post", rich_help_panel=live)(post_cli.cmd_post)
    app.command("worker", rich_help_panel=live)(stream_cli.cmd_worker)
    app.command("ticker", rich_help_panel=live)(stream_cli.cmd_ticker)
    app.command("replay", rich_help_panel=live)(stream_cli.cmd_replay)
    app.add_typer(kafka_cli.kafka_app, name="kafka", rich_help_panel=live)
    app.add_typer(ops_cli.dashboards_app, name="dashboards", rich_help_panel=ops)
    app.command("access", rich_help_panel=ops)(ops_cli.cmd_access)
    serve_cli.register(app)
    app.command("report", rich_help_panel=options.AUDIT)(report.cmd_report)
    audit_cli.register(app)
    app.command("demo", rich_help_panel=demo)(demo_cli.cmd_demo)
    app.command("generate", rich_help_panel=demo)(demo_cli.cmd_generate)
    return app


_full: typer.Typer | None = None


def full_app() -> typer.Typer:
    """The whole command tree (`tracker.cli.app`), built once."""
    global _full
    if _full is None:
        _full = _all_commands(_new_app())
    return _full


def run(args: Sequence[str]) -> int:
    """Run the command line `args` through Typer; the exit code."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    # a command that needs none of the others is run by a tree of its own: building the whole
    # tree imports and registers every command's module (~0.1 s)
    if args[:1] and args[0] in READ_COMMANDS:
        app = _read_commands(_new_app())
    elif args[:1] == ["ingest"]:
        app = _ingest_command(_new_app())
    else:
        app = full_app()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(args), prog_name="tracker", standalone_mode=False)
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
