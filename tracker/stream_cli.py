"""The streaming commands: `worker`, `ticker`, `replay` (`post` is tracker/post_cli.py, `kafka
start|stop|status` and the Kafka helpers these share are tracker/kafka_cli.py).

Each returns the exit code; user mistakes raise `tracker.errors.UserError`. Everything a command
is given is checked before it contacts a broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from tracker import options
from tracker.errors import UserError, user_errors
from tracker.kafka_cli import kafka_errors, kafka_logins, topics_of

# -- tracker worker ----------------------------------------------------------------------------


class Role(StrEnum):
    all = "all"
    processor = "processor"
    sink = "sink"


ReplaceRegistry = Annotated[
    bool,
    typer.Option(
        "--replace-registry",
        help="Accept a registry that drops units or assessments the store has events for.",
    ),
]


def cmd_worker(
    units: options.Units = None,
    bootstrap: options.Bootstrap = None,
    topic_prefix: options.TopicPrefix = "tracker",
    partitions: options.Partitions = 4,
    role: Annotated[
        Role, typer.Option("--role", help="Run the processor, the store sink, or both.")
    ] = Role.all,
    store: options.Store = None,
    web_port: Annotated[
        int,
        typer.Option(
            "--web-port", min=1, max=65535, metavar="PORT", help="Port of the worker's read views."
        ),
    ] = 6066,
    rulebooks: options.Rulebooks = None,
    holidays: options.Holidays = None,
    replace_registry: ReplaceRegistry = False,
    sink_batch: Annotated[
        int | None,
        typer.Option(
            "--sink-batch",
            min=1,
            metavar="N",
            help="Records per store write.",
            show_default="20,000 with --role all, else 5,000",
        ),
    ] = None,
    sink_within_s: Annotated[
        float,
        typer.Option(
            "--sink-within-s", min=0, metavar="S", help="Write a partial batch after S seconds."
        ),
    ] = 0.5,
    commit_interval_s: Annotated[
        float,
        typer.Option(
            "--commit-interval-s",
            callback=options.positive,
            metavar="S",
            help="Commit consumer offsets every S seconds.",
        ),
    ] = 0.5,
    session_timeout_s: Annotated[
        float,
        typer.Option(
            "--session-timeout-s",
            min=6,
            metavar="S",
            help="How long a dead worker's partitions wait before the group moves them.",
        ),
    ] = 10.0,
    warn_leads: Annotated[
        str,
        typer.Option(
            "--warn-leads", metavar="DAYS", help="Warn this many days before a deadline, D,D,..."
        ),
    ] = "3,1",
    fault_file: Annotated[
        Path | None,
        typer.Option(
            "--fault-file",
            metavar="PATH",
            help="While PATH exists, every store write fails (outage drills).",
            show_default="no drill",
        ),
    ] = None,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            "--checkpoint-every",
            min=0,
            metavar="N",
            help="Checkpoint a partition's engine after N of its records (0: only at a stop).",
        ),
    ] = 50_000,
    loglevel: Annotated[
        str, typer.Option("--loglevel", metavar="LEVEL", help="Faust's log level.")
    ] = "info",
    # Engine snapshots were removed (issue 7): accepted, with a warning, so that existing
    # scripts keep starting.
    table_store: Annotated[str | None, typer.Option("--table-store", hidden=True)] = None,
    snapshot_every: Annotated[str | None, typer.Option("--snapshot-every", hidden=True)] = None,
) -> int:
    """Run the Faust worker: the engine over the input topic, and/or the store sink."""
    import sys

    from engine.warnings import WarningPolicy
    from streams.app import run_worker
    from streams.settings import Config, WorkerSettings
    from streams.settings import sink_batch as sink_batch_for

    config = Config.load(
        options.units_path(units), options.rulebooks_dir(rulebooks), options.holidays_file(holidays)
    )
    for flag, value in (("--table-store", table_store), ("--snapshot-every", snapshot_every)):
        if value is not None:
            print(f"tracker worker: {flag} is ignored: engine state is rebuilt from the input "
                  "topic, there are no snapshots any more", file=sys.stderr)  # fmt: skip
    try:
        leads = WarningPolicy.parse(warn_leads)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    dsn = options.store_dsn(store)
    if role is not Role.processor:  # the roles that record the registry in the store
        _check_registry(dsn, config.registry, replace=replace_registry)
    login, admin = kafka_logins("worker")
    # the worker signs what reaches it unsigned, and the heads of its writes (docs/audit.md)
    from config.signing import writer_signer

    signer = writer_signer(options.current())
    settings = WorkerSettings(
        login=login,
        admin=admin,
        config=dataclasses.replace(config, signer=signer),
        role=role.value,
        bootstrap=options.bootstrap(bootstrap),
        topics=topics_of(topic_prefix),
        partitions=partitions,
        store=dsn,
        web_port=web_port,
        data_dir=options.current().data_dir,
        sink_max_records=sink_batch_for(role.value, sink_batch),
        sink_within_s=sink_within_s,
        commit_interval_s=commit_interval_s,
        session_timeout_s=session_timeout_s,
        checkpoint_every=checkpoint_every,
        warnings=leads,
        fault_file=fault_file,
        web_token=options.current().worker_token,
    )
    with kafka_errors(quiet=False):
        return run_worker(settings, loglevel=loglevel)


def _check_registry(store: str, registry: Any, *, replace: bool) -> None:
    """Before any broker is contacted: the same refusal as `tracker ingest` of a registry that
    would take away what the store's events were deducted under (tracker/registry_guard.py)."""
    from sinks import open_store
    from tracker.registry_guard import check_registry_change

    with user_errors():
        sink = open_store(store)
        try:
            check_registry_change(sink, registry, replace=replace)
        finally:
            sink.close()


# -- tracker ticker ----------------------------------------------------------------------------


def cmd_ticker(
    bootstrap: options.Bootstrap = None,
    topic_prefix: options.TopicPrefix = "tracker",
    partitions: options.Partitions = 4,
    interval_s: Annotated[
        float,
        typer.Option(
            "--interval-s", callback=options.positive, metavar="S", help="Seconds between rounds."
        ),
    ] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="One round of ticks, then exit.")] = False,
) -> int:
    """Produce clock.tick to every partition (run one ticker per cluster)."""
    from streams.ticker import now_seconds, run_ticker, tick_once
    from streams.topics import ensure_topics

    topics = topics_of(topic_prefix)
    broker = options.bootstrap(bootstrap)
    login, admin = kafka_logins("ticker")
    with kafka_errors(quiet=once):
        if once:

            async def one_round() -> None:
                count = await ensure_topics(
                    broker, topics, partitions, login=login, admin=admin, only_input=True
                )
                await tick_once(broker, topics, count, now_seconds(), login)

            asyncio.run(one_round())
            return 0
        return run_ticker(broker, topics, partitions, interval_s, login, admin)


# -- tracker replay ----------------------------------------------------------------------------


def cmd_replay(
    from_kafka: Annotated[
        bool, typer.Option("--from-kafka", help="Replay the input topic and diff with the store.")
    ] = False,
    rulebook: Annotated[
        str | None,
        typer.Option(
            "--rulebook",
            metavar="ID",
            help="What-if: replay the store's event log with this rulebook assessing its tier.",
            show_default="no what-if",
        ),
    ] = None,
    unit: Annotated[
        str | None,
        typer.Option(
            "--unit",
            metavar="ID",
            help="What-if: only this unit's differences (its tier must be the rulebook's).",
            show_default="every unit",
        ),
    ] = None,
    year: Annotated[
        int | None,
        typer.Option(
            "--year",
            metavar="N",
            help="What-if: the rulebook assesses this year only.",
            show_default="every year the tier is assessed",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="What-if: print the differences as JSON.")
    ] = False,
    units: options.Units = None,
    bootstrap: options.Bootstrap = None,
    topic_prefix: options.TopicPrefix = "tracker",
    partitions: options.Partitions = 4,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="DSN",
            help="The live store (--from-kafka reads it through the worker that holds it).",
            show_default="as `tracker status`: $TRACKER_STORE, else chDB under $TRACKER_DATA",
        ),
    ] = None,
    worker_url: Annotated[
        str | None,
        typer.Option(
            "--worker-url",
            metavar="URL",
            help="Read the live store from this worker.",
            show_default="the store itself, or the worker holding it ($TRACKER_WORKER_URL)",
        ),
    ] = None,
    rulebooks: options.Rulebooks = None,
    holidays: options.Holidays = None,
    wait_s: Annotated[
        float,
        typer.Option("--wait-s", min=0, metavar="S", help="Wait for the live store to catch up."),
    ] = 60.0,
) -> int:
    """Replay the input topic and diff with the live ledger, or (--rulebook) the store's event
    log under another rulebook."""
    if rulebook is not None:
        if from_kafka:
            raise typer.BadParameter("a what-if replay reads the store: not with --from-kafka",
                                     param_hint="--rulebook")  # fmt: skip
        if worker_url is not None:
            raise typer.BadParameter("a what-if replay reads the store itself, not a worker",
                                     param_hint="--worker-url")  # fmt: skip
        from tracker.whatif import cmd_what_if

        return cmd_what_if(rulebook, store=store, rulebooks=rulebooks, holidays=holidays,
                           unit=unit, year=year, as_json=as_json)  # fmt: skip
    for name, given in (("--unit", unit), ("--year", year), ("--json", as_json or None)):
        if given is not None:
            raise typer.BadParameter("only with --rulebook (a what-if replay)", param_hint=name)
    if not from_kafka:
        raise typer.BadParameter(
            "give --from-kafka (the input topic) or --rulebook ID (a what-if replay of the store)",
            param_hint="--from-kafka",
        )
    from streams.replay import run_replay
    from streams.settings import Config
    from tracker.progress import progress

    del partitions  # accepted like the other Kafka commands; a replay reads what the topic has
    config = Config.load(
        options.units_path(units), options.rulebooks_dir(rulebooks), options.holidays_file(holidays)
    )
    login, _ = kafka_logins("worker")  # the one principal that may read the input topic
    with kafka_errors(), progress("replay: records read") as advance:
        return run_replay(
            config,
            login=login,
            bootstrap=options.bootstrap(bootstrap),
            topics=topics_of(topic_prefix),
            store=options.store_dsn(store),
            worker_url=worker_url,
            wait_s=wait_s,
            on_replayed=advance,
        )
