"""`tracker kafka start|stop|status` (the local broker under $TRACKER_DATA), and the Kafka
helpers every command that contacts a broker shares (`worker`, `ticker`, `replay` in
tracker/stream_cli.py, `post --direct`, `serve --bootstrap`): its login, its topics, its errors.

A module of their own so that the streaming commands' module holds the commands and not the
plumbing under them. Each command returns the exit code; user mistakes raise
`tracker.errors.UserError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tracker import options
from tracker.errors import UserError

if TYPE_CHECKING:  # streams is imported where a command runs, to keep `--help` quick
    from streams.kafka_auth import KafkaLogin, Principal

DEFAULT_KAFKA_PORT = 9092


@contextmanager
def kafka_errors(quiet: bool = True) -> Iterator[None]:
    """Kafka trouble is one line for the user, not a traceback. Short commands also silence
    aiokafka's own lines; a worker keeps them in its log."""
    from aiokafka.errors import KafkaError

    from streams.topics import TopicError, quiet_kafka

    try:
        if quiet:
            with quiet_kafka():
                yield
        else:
            yield
    except TopicError as exc:
        raise UserError(str(exc)) from None
    except KafkaError as exc:
        raise UserError(f"Kafka: {exc}") from None


def topics_of(prefix: str) -> Any:
    from streams.topics import Topics

    return Topics(prefix)


def kafka_logins(role: Principal) -> tuple[KafkaLogin | None, KafkaLogin | None]:
    """(this process's Kafka login in `role`, the local broker's admin login or None): from
    TRACKER_KAFKA_USER/PASSWORD, else the credentials folder (streams/kafka_auth.py)."""
    from streams.kafka_auth import CredentialsError, local_admin, login_for

    env = options.current()
    try:
        return login_for(role, env), local_admin(env)
    except CredentialsError as exc:
        raise UserError(str(exc)) from None


# -- tracker kafka -----------------------------------------------------------------------------

kafka_app = typer.Typer(
    help="Start, stop or check the local Kafka broker (under $TRACKER_DATA).",
    no_args_is_help=True,
    add_completion=False,
)
Port = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=1,
        max=65534,
        metavar="PORT",
        help="The broker's client port; its controller listens on PORT + 1.",
        show_default=str(DEFAULT_KAFKA_PORT),
    ),
]


@kafka_app.callback()
def kafka_group(ctx: typer.Context, port: Port = None) -> None:
    """Start, stop or check the local Kafka broker (under $TRACKER_DATA)."""
    ctx.ensure_object(dict)["port"] = port


def _kafka(ctx: typer.Context, action: str, port: int | None) -> int:
    from streams.broker import BrokerError, LocalKafka

    env = options.current()
    port = port or (ctx.obj or {}).get("port") or DEFAULT_KAFKA_PORT
    broker = LocalKafka(env.data_dir, port=port)
    try:
        if action == "start":
            broker.start()
            _grant_default_prefix(broker, env.topic_prefix)
        elif action == "stop":
            broker.stop()
    except BrokerError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    state = broker.status()
    what = "ready" if state.ready else "running, not ready" if state.running else "stopped"
    print(f"kafka {what}: {state.bootstrap} (pid {state.pid or '-'}, data {broker.home})")
    if action != "stop" and broker.credentials.folder.is_dir():
        # where the logins are, never the passwords themselves
        print(
            f"kafka logins (SASL/SCRAM): {broker.credentials.folder}/{{admin,intake,worker,ticker}}.properties"
        )
    return 0 if action == "stop" or state.ready else 1


def _grant_default_prefix(broker: Any, prefix: str) -> None:
    """The ACLs of the topic prefix the commands use by default ($TRACKER_TOPIC_PREFIX), so a
    worker, a ticker and `tracker post` can start as their own principals right away."""
    from streams.kafka_acls import AclError, grant
    from streams.topics import Topics, quiet_kafka

    try:
        with quiet_kafka():
            asyncio.run(grant(broker.bootstrap, broker.login("admin"), Topics(prefix)))
    except AclError as exc:
        raise UserError(f"kafka: cannot grant the ACLs of topic prefix {prefix!r}: {exc}") from None


@kafka_app.command("start")
def cmd_kafka_start(ctx: typer.Context, port: Port = None) -> int:
    """Start the broker and wait until it is ready (exit 1 if it is not)."""
    return _kafka(ctx, "start", port)


@kafka_app.command("stop")
def cmd_kafka_stop(ctx: typer.Context, port: Port = None) -> int:
    """Stop the broker."""
    return _kafka(ctx, "stop", port)


@kafka_app.command("status")
def cmd_kafka_status(ctx: typer.Context, port: Port = None) -> int:
    """Say whether the broker runs and is ready (exit 1 if it is not ready)."""
    return _kafka(ctx, "status", port)
