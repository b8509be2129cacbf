"""The streaming subcommands: `tracker kafka|post|worker|ticker|replay`.

`register(sub)` adds them to the `tracker` parser; each sets `handler`, which takes the parsed
arguments and returns the exit code. User mistakes raise `tracker.commands.UserError`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from config.settings import data_dir, default_store
from tracker.commands import UserError, user_errors

DEFAULT_POST_TIMEOUT_S = 60.0


def register(sub: Any) -> None:
    p = sub.add_parser("kafka", help="start, stop or check the local Kafka broker")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--port", type=int, default=9092, help="client port (controller: port + 1)")
    p.set_defaults(handler=cmd_kafka)

    p = sub.add_parser("post", help="check events against the contract and produce them")
    _kafka_args(p)
    _units_arg(p)
    p.add_argument("--file", metavar="FILE|-", help="JSONL, a JSON object or a JSON array")
    p.add_argument("--type", dest="type", help="build one event from flags: its type")
    p.add_argument("--unit")
    p.add_argument("--at", metavar="RFC3339", help="default: now, +08:00")
    p.add_argument("--event-id", help="default: a random id")
    for name in ("notice-id", "system", "due", "cause", "terminal", "finding", "incident-id"):
        p.add_argument(f"--{name}")
    p.add_argument("--terminals", metavar="T1,T2")
    for name in ("control", "signal-id", "target-event-id", "reason"):
        p.add_argument(f"--{name}")
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_POST_TIMEOUT_S,
        metavar="S",
        help="give up after S seconds in all (connecting, sending, confirmations); what the "
        f"broker has not confirmed by then is reported as not sent (default {DEFAULT_POST_TIMEOUT_S:g})",
    )
    p.add_argument("--json", action="store_true", help="end with a JSON summary line")
    p.set_defaults(handler=cmd_post)

    p = sub.add_parser("worker", help="run the Faust worker (processor and/or sink)")
    _kafka_args(p)
    _units_arg(p)
    p.add_argument("--role", choices=("all", "processor", "sink"), default="all")
    p.add_argument("--store", default=None, metavar="DSN", help="default: as `tracker status`")
    p.add_argument("--web-port", type=int, default=6066)
    p.add_argument("--rulebooks", type=Path, default=None, metavar="DIR")
    p.add_argument("--holidays", type=Path, default=None, metavar="FILE")
    # Engine snapshots were removed (issue 7): these are accepted, with a warning, so existing
    # scripts keep starting.
    p.add_argument("--table-store", default=None, help=argparse.SUPPRESS)
    p.add_argument("--snapshot-every", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--replace-registry",
        action="store_true",
        help="accept a registry that drops units or assessments the store has events for",
    )
    p.add_argument("--sink-batch", type=int, default=5_000, metavar="N")
    p.add_argument("--sink-within-s", type=float, default=0.5, metavar="S")
    p.add_argument("--commit-interval-s", type=float, default=0.5, metavar="S")
    p.add_argument("--session-timeout-s", type=float, default=10.0, metavar="S")
    p.add_argument("--warn-leads", default="3,1", metavar="DAYS", help="deadline warning leads")
    p.add_argument(
        "--fault-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="while PATH exists, every store write fails (outage drills)",
    )
    p.add_argument("--loglevel", default="info")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("ticker", help="produce clock.tick to every partition (leader only)")
    _kafka_args(p)
    p.add_argument("--interval-s", type=float, default=60.0)
    p.add_argument("--once", action="store_true", help="one round of ticks, then exit")
    p.set_defaults(handler=cmd_ticker)

    p = sub.add_parser("replay", help="replay the input topic and diff against the live ledger")
    _kafka_args(p)
    _units_arg(p)
    p.add_argument("--from-kafka", action="store_true", required=True)
    p.add_argument(
        "--store",
        default=None,
        metavar="DSN",
        help="the live store (default: as `tracker status`; read through the worker if it holds it)",
    )
    p.add_argument("--worker-url", default=None, help="read the live store from this worker")
    p.add_argument("--rulebooks", type=Path, default=None, metavar="DIR")
    p.add_argument("--holidays", type=Path, default=None, metavar="FILE")
    p.add_argument("--wait-s", type=float, default=60.0, help="wait for the live store to catch up")
    p.set_defaults(handler=cmd_replay)


def _kafka_args(p: argparse.ArgumentParser) -> None:
    from streams.settings import DEFAULT_BOOTSTRAP, KAFKA_ENV

    p.add_argument(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT",
        help=f"the Kafka broker (default: ${KAFKA_ENV}, else {DEFAULT_BOOTSTRAP})",
    )
    p.add_argument("--topic-prefix", default="tracker")
    p.add_argument("--partitions", type=int, default=4, help="when creating the topics")


def broker_of(args: argparse.Namespace) -> tuple[str, str]:
    """The broker to use and where that came from, to say with the results: a forgotten
    --bootstrap must not pass unnoticed when some other broker answers on the default port."""
    from streams.settings import DEFAULT_BOOTSTRAP, KAFKA_ENV

    if args.bootstrap:
        return args.bootstrap, "--bootstrap"
    if os.environ.get(KAFKA_ENV):
        return os.environ[KAFKA_ENV], f"${KAFKA_ENV}"
    return DEFAULT_BOOTSTRAP, f"default: no --bootstrap, no ${KAFKA_ENV}"


def _bootstrap(args: argparse.Namespace) -> str:
    bootstrap, _ = broker_of(args)
    args.bootstrap = bootstrap
    return bootstrap


def _units_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--units",
        type=Path,
        default=os.environ.get("TRACKER_UNITS") or None,
        metavar="UNITS.yaml",
        help="unit registry (default: $TRACKER_UNITS)",
    )


def _units(args: argparse.Namespace) -> Path:
    if args.units is None:
        raise UserError("--units UNITS.yaml is required (or set TRACKER_UNITS)")
    return Path(args.units)


def _topics(args: argparse.Namespace) -> Any:
    from streams.topics import Topics

    return Topics(args.topic_prefix)


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


def cmd_kafka(args: argparse.Namespace) -> int:
    from streams.broker import BrokerError, LocalKafka

    broker = LocalKafka(data_dir(), port=args.port)
    try:
        if args.action == "start":
            broker.start()
        elif args.action == "stop":
            broker.stop()
    except BrokerError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    state = broker.status()
    what = "ready" if state.ready else "running, not ready" if state.running else "stopped"
    print(f"kafka {what}: {state.bootstrap} (pid {state.pid or '-'}, data {broker.home})")
    return 0 if args.action == "stop" or state.ready else 1


def cmd_post(args: argparse.Namespace) -> int:
    """Exit 0: every event sent; 1: some lines rejected, every other one sent; 2: some events
    not sent (broker unreachable, failing or too slow), or nothing could be read at all."""
    from datetime import UTC, datetime

    from streams.post import FIELD_FLAGS, Poster, event_from_flags, post_within, raw_events

    if (args.file is None) == (args.type is None):
        raise UserError("give either --file FILE|- or --type with the event's flags")
    if not args.timeout > 0:
        raise UserError("--timeout must be a positive number of seconds")
    bootstrap, source = broker_of(args)
    with user_errors():
        from config.registry import load_registry

        registry = load_registry(_units(args))
        if args.file is not None:
            data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
            lines = list(raw_events(data))
        else:
            values = {k: getattr(args, k) for k in ("type", "unit", "at", "event_id", *FIELD_FLAGS)}
            lines = list(raw_events(event_from_flags(values, datetime.now(UTC))))
    poster = Poster(bootstrap, _topics(args), registry, args.partitions)
    with kafka_errors():
        waiting = lambda why: _say(f"tracker: {why}")  # noqa: E731
        summary = asyncio.run(post_within(poster, lines, args.timeout, on_wait=waiting))
    broker = f"broker {bootstrap} ({source})"
    for number, reason in summary.problems:
        _say(f"tracker post: rejected: line {number}: {reason}")
    if summary.not_sent:
        from streams.post import line_ranges

        where = "line" if len(summary.unsent) == 1 else "lines"
        again = (  # an id made up for flags would change if the command were simply repeated
            f"post it again with --event-id {json.loads(lines[0].raw)['event_id']}"
            if args.type is not None
            else "post them again (an event id already in the topic is ignored)"
        )
        _say(
            f"tracker post: not sent: {summary.not_sent} event(s), {where} "
            f"{line_ranges(summary.unsent)}: {broker}: {summary.error}; {again}"
        )
    if args.json:
        print(json.dumps({**summary.as_dict(), "broker": bootstrap, "broker_from": source,
                          "topic": poster.topics.events, "error": summary.error,
                          "rejected_lines": [{"line": n, "reason": r} for n, r in summary.problems],
                          "not_sent_lines": summary.unsent}, ensure_ascii=False))  # fmt: skip
    else:
        print(
            f"sent {summary.sent}, not sent {summary.not_sent}, rejected {summary.rejected}  "
            f"({broker}, topic {poster.topics.events})"
        )
    return 2 if summary.not_sent else 1 if summary.rejected else 0


def _say(message: str) -> None:
    from sinks.dsn import mask
    from tracker.tables import printable

    print(printable(mask(message)), file=sys.stderr)


def cmd_worker(args: argparse.Namespace) -> int:
    from engine.warnings import WarningPolicy
    from streams.app import run_worker
    from streams.settings import Config, WorkerSettings

    with user_errors():
        config = Config.load(_units(args), args.rulebooks, args.holidays)
    for flag, value in (
        ("--table-store", args.table_store),
        ("--snapshot-every", args.snapshot_every),
    ):
        if value is not None:
            print(f"tracker worker: {flag} is ignored: engine state is rebuilt from the input "
                  "topic, there are no snapshots any more", file=sys.stderr)  # fmt: skip
    try:
        leads = WarningPolicy.parse(args.warn_leads)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    store = args.store or default_store()
    if args.role != "processor":  # the roles that record the registry in the store
        with user_errors():
            _check_registry(store, config.registry, replace=args.replace_registry)
    settings = WorkerSettings(
        config=config,
        role=args.role,
        bootstrap=_bootstrap(args),
        topics=_topics(args),
        partitions=args.partitions,
        store=store,
        web_port=args.web_port,
        data_dir=data_dir(),
        sink_max_records=args.sink_batch,
        sink_within_s=args.sink_within_s,
        commit_interval_s=args.commit_interval_s,
        session_timeout_s=args.session_timeout_s,
        warnings=leads,
        fault_file=args.fault_file,
    )
    with kafka_errors(quiet=False):
        return run_worker(settings, loglevel=args.loglevel)


def _check_registry(store: str, registry: Any, *, replace: bool) -> None:
    """Before any broker is contacted: the same refusal as `tracker ingest` of a registry that
    would take away what the store's events were deducted under (tracker/registry_guard.py)."""
    from sinks import open_store
    from tracker.registry_guard import check_registry_change

    sink = open_store(store)
    try:
        check_registry_change(sink, registry, replace=replace)
    finally:
        sink.close()


def cmd_ticker(args: argparse.Namespace) -> int:
    from streams.ticker import now_seconds, run_ticker, tick_once
    from streams.topics import ensure_topics

    topics = _topics(args)
    _bootstrap(args)
    if args.interval_s <= 0:
        raise UserError("--interval-s must be positive")
    with kafka_errors(quiet=args.once):
        if args.once:

            async def once() -> None:
                partitions = await ensure_topics(args.bootstrap, topics, args.partitions)
                await tick_once(args.bootstrap, topics, partitions, now_seconds())

            asyncio.run(once())
            return 0
        return run_ticker(args.bootstrap, topics, args.partitions, args.interval_s)


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.replay import run_replay
    from tracker.progress import progress

    with user_errors(), kafka_errors(), progress("replay: records read") as advance:
        from streams.settings import Config

        config = Config.load(_units(args), args.rulebooks, args.holidays)
        return run_replay(
            config,
            bootstrap=_bootstrap(args),
            topics=_topics(args),
            store=args.store or default_store(),
            worker_url=args.worker_url,
            wait_s=args.wait_s,
            on_replayed=advance,
        )
