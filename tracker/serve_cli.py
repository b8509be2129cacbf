"""`tracker serve` (the HTTP intake and read API) and `tracker principals add|list|revoke`.

`register(app)` adds both to a Typer app (the root `tracker` app, or a test's own).
"""

from __future__ import annotations

import gc
import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from tracker import options
from tracker.errors import UserError
from tracker.principals import ROLES, PrincipalError, PrincipalStore
from tracker.tables import printable, render

SERVE = "Serve (HTTP)"
LIMITS = "Limits"

PrincipalsFile = Annotated[
    Path | None,
    typer.Option(
        "--principals",
        metavar="FILE",
        help="The principals file (tokens stored as salted hashes only).",
        show_default="$TRACKER_PRINCIPALS, else principals.json under $TRACKER_DATA",
    ),
]


def _principals(given: Path | None) -> PrincipalStore:
    return PrincipalStore(given or options.current().principals_path())


def cmd_serve(
    host: Annotated[
        str | None,
        typer.Option(
            "--host", help="Address to bind.", show_default="$TRACKER_SERVE_HOST, else 127.0.0.1"
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="Port to bind.",
            show_default="$TRACKER_SERVE_PORT, else 8000",
        ),
    ] = None,
    store: options.Store = None,
    units: options.Units = None,
    rulebooks: options.Rulebooks = None,
    holidays: options.Holidays = None,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            "--bootstrap",
            metavar="HOST:PORT",
            help="Produce to this Kafka broker (a worker applies the events); without it, the "
            "events are applied here, into the store.",
            show_default="none: embedded",
            callback=options._check_bootstrap,
        ),
    ] = None,
    topic_prefix: options.TopicPrefix = "tracker",
    partitions: options.Partitions = 4,
    principals: PrincipalsFile = None,
    replace_registry: Annotated[
        bool,
        typer.Option(
            "--replace-registry",
            help="Accept a registry that drops units or assessments the store has events for.",
        ),
    ] = False,
    max_body_bytes: Annotated[
        int,
        typer.Option(
            "--max-body-bytes",
            min=1,
            metavar="N",
            help="Largest request body (413).",
            rich_help_panel=LIMITS,
        ),
    ] = 8 * 1024 * 1024,
    max_events: Annotated[
        int,
        typer.Option(
            "--max-events",
            min=1,
            metavar="N",
            help="Most events per request (413).",
            rich_help_panel=LIMITS,
        ),
    ] = 10_000,
    rate: Annotated[
        float,
        typer.Option(
            "--rate",
            min=0.001,
            metavar="R",
            help="Requests per second per principal (429).",
            rich_help_panel=LIMITS,
        ),
    ] = 50.0,
    burst: Annotated[
        int,
        typer.Option(
            "--burst",
            min=1,
            metavar="N",
            help="Requests a principal may make at once.",
            rich_help_panel=LIMITS,
        ),
    ] = 100,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            callback=options.positive,
            metavar="S",
            help="Seconds to receive a body (408) and to wait for the store or broker (503).",
            rich_help_panel=LIMITS,
        ),
    ] = 30.0,
) -> int:
    """Serve the HTTP API: post events with a token, read status, ledger, deadlines, rejects.

    Without --bootstrap it is a whole tracker on one machine: the events are applied here, into
    the store. API documentation at http://HOST:PORT/docs.
    """
    import uvicorn

    from tracker.serve.app import create_app
    from tracker.serve.backends import open_embedded, open_kafka
    from tracker.serve.limits import Limits
    from tracker.serve.service import ServiceUnavailable

    now = options.current()
    limits = Limits(max_body_bytes, max_events, rate, burst, timeout)
    dsn = options.store_dsn(store)
    units = units or now.units
    try:
        if bootstrap:
            from tracker.kafka_cli import kafka_logins

            login, admin = kafka_logins("intake")  # the one principal that writes events
            service = open_kafka(
                bootstrap,
                dsn,
                units,
                options.rulebooks_dir(rulebooks),
                topic_prefix=topic_prefix,
                partitions=partitions,
                lock_timeout_s=timeout,
                login=login,
                admin=admin,
            )
        else:
            service = open_embedded(
                dsn,
                units,
                options.rulebooks_dir(rulebooks),
                options.holidays_file(holidays),
                replace_registry=replace_registry,
                lock_timeout_s=timeout,
            )
    except ServiceUnavailable as exc:
        raise UserError(str(exc)) from None
    try:
        tokens = _principals(principals)
        try:
            active = [p for p, _, revoked in tokens.list() if revoked is None]
        except PrincipalError as exc:
            raise UserError(str(exc)) from None
        if not active:
            print(
                printable(
                    f"tracker serve: no principal in {tokens.path} yet: every request will be "
                    "refused (401) until `tracker principals add` makes one"
                ),
                file=sys.stderr,
            )
        app = create_app(service, tokens, limits)
        bind_host, bind_port = host or now.serve_host, port or now.serve_port
        print(
            printable(
                f"tracker serve: http://{bind_host}:{bind_port} ({service.backend}); "
                f"API documentation at /docs"
            ),
            file=sys.stderr,
        )
        # uvicorn shuts down gracefully on SIGTERM, then raises it again: end with exit 0 then,
        # through the `finally` below that closes the store.
        signal.signal(signal.SIGTERM, _terminated)
        # What exists now lives as long as the server (modules, the app, the registry, the state
        # read at start): out of the collector's scans, so that a full collection, which stops
        # every request, costs only what came since (BENCHMARKS.md, "tracker serve" intake).
        gc.collect()
        gc.freeze()
        uvicorn.run(
            app,
            host=bind_host,
            port=bind_port,
            log_level="info",
            timeout_keep_alive=5,
            timeout_graceful_shutdown=int(timeout),
        )
    finally:
        service.close()
    return 0


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_add(
    role: Annotated[
        str, typer.Option("--role", metavar="ROLE", help=f"One of {', '.join(ROLES)}.")
    ],
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            metavar="UNIT",
            help="centre: a unit and every unit below it; unit: its own unit.",
            show_default="the whole province (centre); required for a unit",
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Who it is, for `list`.")] = "",
    jurisdiction: Annotated[
        bool,
        typer.Option(
            "--jurisdiction", help="unit: also the units below it (a city's administrator)."
        ),
    ] = False,
    units: options.Units = None,
    principals: PrincipalsFile = None,
) -> int:
    """Make a principal and print its token, once: only a salted hash of it is kept."""
    registry_path = units or options.current().units
    if scope not in (None, "", "*") and registry_path is not None:
        from config.registry import load_registry

        if load_registry(registry_path).unit(scope) is None:
            raise UserError(
                f"--scope {scope!r} is not a unit of {registry_path} "
                "(leave --scope out, or give '*', for the whole province)"
            )
    try:
        principal, token = _principals(principals).add(role, scope, name, jurisdiction=jurisdiction)
    except PrincipalError as exc:
        raise UserError(str(exc)) from None
    print(token)
    print(
        printable(
            f"principal {principal.id} made; its token is printed above and is not kept: "
            "store it now (`tracker principals revoke ID` if it leaks)"
        ),
        file=sys.stderr,
    )
    return 0


def cmd_list(principals: PrincipalsFile = None, as_json: options.Json = False) -> int:
    """Every principal, with revoked ones (their ids are never given again)."""
    try:
        rows = _principals(principals).list()
    except PrincipalError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": p.id,
                        "role": p.role,
                        "scope": p.scope_text,
                        "jurisdiction": p.jurisdiction,
                        "name": p.name,
                        "created_at": created,
                        "revoked_at": revoked,
                    }
                    for p, created, revoked in rows
                ],
                ensure_ascii=False,
            )
        )
        return 0
    print(
        render(
            ["id", "role", "scope", "name", "created", "revoked"],
            [
                [
                    p.id,
                    p.role,
                    p.scope_text + (" (jurisdiction)" if p.jurisdiction else ""),
                    p.name,
                    created,
                    revoked or "",
                ]
                for p, created, revoked in rows
            ],
        )
    )
    return 0


def cmd_revoke(
    principal_id: Annotated[str, typer.Argument(metavar="ID", help="The principal's id.")],
    principals: PrincipalsFile = None,
) -> int:
    """Refuse a principal's token from now on (a running `tracker serve` too, at once)."""
    try:
        principal = _principals(principals).revoke(principal_id)
    except PrincipalError as exc:
        raise UserError(str(exc)) from None
    print(printable(f"revoked {principal.id}"), file=sys.stderr)
    return 0


principals_app = typer.Typer(
    help="API tokens of `tracker serve`: add, list, revoke.", no_args_is_help=True
)
principals_app.command("add")(cmd_add)
principals_app.command("list")(cmd_list)
principals_app.command("revoke")(cmd_revoke)


def register(app: typer.Typer) -> None:
    app.command("serve", rich_help_panel=SERVE)(cmd_serve)
    app.add_typer(principals_app, name="principals", rich_help_panel=SERVE)
