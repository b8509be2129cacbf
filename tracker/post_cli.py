"""`tracker post`: post events to `tracker serve` with a token, or (`--direct`, an operator's tool)
check them against the contract and produce them straight to the input topic.

Through `tracker serve` (the default): the token comes from `--token-file` or $TRACKER_TOKEN, the
server checks and authorizes every event (docs/access.md) and answers per line
(tracker/serve/client.py). `--direct`: everything is checked before the first connection: the
flags while parsing (tracker/options.py), the registry and every event by
`streams.post.post_within`, which contacts the broker only for events that passed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from tracker import options
from tracker.errors import UserError
from tracker.kafka_cli import kafka_errors, kafka_logins, topics_of

DEFAULT_POST_TIMEOUT_S = 60.0
EVENT_TYPES = (
    "vuln.notice, vuln.feedback, outreach.notice, terminal.finding, extranet.notice, "
    "crypto.notice, incident.report, mlps.finding, control.finding, supervision.warning, "
    "supervision.handled, event.retracted, clock.tick"
)
EVENT = "Event from flags"  # the --help section of the flags that build one event


def _field(flag: str, help_text: str, metavar: str = "TEXT") -> object:
    return typer.Option(
        flag, metavar=metavar, help=help_text, show_default="none", rich_help_panel=EVENT
    )


SERVE = "Through tracker serve"
DIRECT = "Direct to Kafka (--direct)"
# options that only producing straight to Kafka uses: refused without --direct
DIRECT_ONLY = {
    "units": "--units",
    "bootstrap": "--bootstrap",
    "topic_prefix": "--topic-prefix",
    "partitions": "--partitions",
}


def cmd_post(
    ctx: typer.Context,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            metavar="FILE|-",
            help="Events to post: JSONL, a JSON object or a JSON array; - reads stdin.",
            show_default="none: build one event from the flags below",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="The tracker serve to post to.",
            show_default="$TRACKER_SERVE_URL, else http://127.0.0.1:8000",
            rich_help_panel=SERVE,
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            metavar="FILE",
            help="A file holding the API token (from `tracker principals add`).",
            show_default="$TRACKER_TOKEN",
            rich_help_panel=SERVE,
        ),
    ] = None,
    direct: Annotated[
        bool,
        typer.Option(
            "--direct",
            help="Produce straight to Kafka, without tracker serve: an operator's tool (no token, "
            "no envelope: the worker records no poster).",
            rich_help_panel=DIRECT,
        ),
    ] = False,
    units: options.Units = None,
    bootstrap: options.Bootstrap = None,
    topic_prefix: options.TopicPrefix = "tracker",
    partitions: options.Partitions = 4,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            callback=options.positive,
            metavar="S",
            help="Give up after S seconds in all (connecting, sending, confirmations); what the "
            "server or the broker has not taken by then is reported as not sent.",
        ),
    ] = DEFAULT_POST_TIMEOUT_S,
    as_json: Annotated[bool, typer.Option("--json", help="End with a JSON summary line.")] = False,
    event_type: Annotated[
        str | None, _field("--type", f"The event's type: {EVENT_TYPES}.", "TYPE")
    ] = None,
    unit: Annotated[str | None, _field("--unit", "The unit's id.", "ID")] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="RFC3339",
            help="When it happened.",
            show_default="now, +08:00",
            rich_help_panel=EVENT,
        ),
    ] = None,
    event_id: Annotated[
        str | None,
        typer.Option(
            "--event-id",
            metavar="ID",
            help="The event's id; posting the same id again is ignored downstream.",
            show_default="a random id",
            rich_help_panel=EVENT,
        ),
    ] = None,
    notice_id: Annotated[
        str | None, _field("--notice-id", "The notice's reference.", "REF")
    ] = None,
    system: Annotated[str | None, _field("--system", "The information system concerned.")] = None,
    due: Annotated[str | None, _field("--due", "A notice's own due time.", "RFC3339")] = None,
    cause: Annotated[
        str | None, _field("--cause", "outreach.notice: violation or registrar_missing.")
    ] = None,
    terminal: Annotated[str | None, _field("--terminal", "The terminal found.")] = None,
    finding: Annotated[
        str | None, _field("--finding", "terminal.finding: antivirus_missing or unregistered.")
    ] = None,
    incident_id: Annotated[
        str | None, _field("--incident-id", "The incident's reference.", "REF")
    ] = None,
    terminals: Annotated[
        str | None, _field("--terminals", "outreach.notice: the terminals, T1,T2,...", "T1,T2")
    ] = None,
    control: Annotated[
        str | None, _field("--control", "control.finding: internet_terminal_realname.")
    ] = None,
    signal_id: Annotated[
        str | None, _field("--signal-id", "The supervision signal's reference.", "REF")
    ] = None,
    target_event_id: Annotated[
        str | None, _field("--target-event-id", "event.retracted: the event retracted.", "ID")
    ] = None,
    reason: Annotated[str | None, _field("--reason", "event.retracted: why.")] = None,
) -> int:
    """Post events to tracker serve with a token; or, with --direct, produce them to Kafka.

    Exit 0: every event accepted (or already there); 1: some lines rejected, every other one taken; 2: some events not sent (server or broker unreachable, refusing or too slow), or nothing could be read at all.
    """
    from datetime import UTC, datetime

    from streams.post_lines import event_from_flags

    if (file is None) == (event_type is None):
        raise UserError("give either --file FILE|- or --type with the event's flags")
    fields = {
        "type": event_type,
        "unit": unit,
        "at": at,
        "event_id": event_id,
        "notice_id": notice_id,
        "system": system,
        "due": due,
        "terminals": terminals,
        "cause": cause,
        "terminal": terminal,
        "finding": finding,
        "incident_id": incident_id,
        "control": control,
        "signal_id": signal_id,
        "target_event_id": target_event_id,
        "reason": reason,
    }
    if file is not None and any(v is not None for v in fields.values()):
        given = [f"--{k.replace('_', '-')}" for k, v in fields.items() if v is not None]
        raise UserError(f"{', '.join(given)}: event flags build one event; not with --file")
    if not direct:
        given = [flag for name, flag in DIRECT_ONLY.items() if _given(ctx, name)]
        if given:
            raise UserError(
                f"{', '.join(given)}: for --direct only (producing straight to Kafka, an "
                "operator's tool); without it `tracker post` posts to tracker serve"
            )
        token = _token(token_file)  # before reading stdin: a missing token is said at once
    if file is not None:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    else:
        data = event_from_flags(fields, datetime.now(UTC)).encode()
    if direct:
        return _post_direct(data, units, bootstrap, topic_prefix, partitions, timeout, as_json,
                            made_up=event_type is not None)  # fmt: skip
    return _post_to_serve(data, url, token, timeout, as_json, made_up=event_type is not None)


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--token-file {token_file}: {exc}") from None
        if not token:
            raise UserError(f"--token-file {token_file} is empty")
        return token
    secret = options.current().token
    if secret is None or not secret.get_secret_value().strip():
        raise UserError(
            "no token: set TRACKER_TOKEN or give --token-file FILE (a token from "
            "`tracker principals add`); --direct produces to Kafka without one"
        )
    return secret.get_secret_value().strip()


def _post_to_serve(
    data: bytes, url: str | None, token: str, timeout: float, as_json: bool, *, made_up: bool
) -> int:
    from streams.post_lines import line_ranges
    from tracker.serve.client import ClientError, post_events

    server = url or options.current().serve_url
    try:
        answer = post_events(server, token, data, timeout_s=timeout)
    except ClientError as exc:
        raise UserError(str(exc)) from None
    for number, why in answer.rejected:
        _say(f"tracker post: rejected: line {number}: {why}")
    if answer.not_sent:
        again = (  # an id made up for flags would change if the command were simply repeated
            f"post it again with --event-id {json.loads(data)['event_id']}"
            if made_up
            else "post them again (an event already accepted is answered as a duplicate)"
        )
        _say(
            f"tracker post: not sent: {len(answer.not_sent)} event(s), lines "
            f"{line_ranges(answer.not_sent)}: {server}: {answer.error}; {again}"
        )
    if as_json:
        print(json.dumps({**answer.as_dict(), "url": server}, ensure_ascii=False))
    else:
        print(
            f"accepted {answer.accepted}, duplicates {answer.duplicates}, rejected "
            f"{len(answer.rejected)}, not sent {len(answer.not_sent)}  (tracker serve at {server})"
        )
    return 2 if answer.not_sent else 1 if answer.rejected else 0


def _post_direct(
    data: bytes,
    units: Path | None,
    bootstrap: str | None,
    topic_prefix: str,
    partitions: int,
    timeout: float,
    as_json: bool,
    *,
    made_up: bool,
) -> int:
    from config.registry import load_registry
    from streams.post import Poster, post_within
    from streams.post_lines import line_ranges, raw_events

    broker, source = options.broker_of(bootstrap)
    registry = load_registry(options.units_path(units))
    lines = list(raw_events(data))
    login, admin = kafka_logins("intake")  # direct produce logs in as the intake
    poster = Poster(broker, topics_of(topic_prefix), registry, partitions, login=login, admin=admin)
    with kafka_errors():
        summary = asyncio.run(
            post_within(poster, lines, timeout, on_wait=lambda why: _say(f"tracker: {why}"))
        )
    where = f"broker {broker} ({source})"
    for number, why in summary.problems:
        _say(f"tracker post: rejected: line {number}: {why}")
    if summary.not_sent:
        lines_word = "line" if len(summary.unsent) == 1 else "lines"
        again = (  # an id made up for flags would change if the command were simply repeated
            f"post it again with --event-id {json.loads(lines[0].raw)['event_id']}"
            if made_up
            else "post them again (an event id already in the topic is ignored)"
        )
        _say(
            f"tracker post: not sent: {summary.not_sent} event(s), {lines_word} "
            f"{line_ranges(summary.unsent)}: {where}: {summary.error}; {again}"
        )
    if as_json:
        print(json.dumps({**summary.as_dict(), "broker": broker, "broker_from": source,
                          "topic": poster.topics.events, "error": summary.error,
                          "rejected_lines": [{"line": n, "reason": r} for n, r in summary.problems],
                          "not_sent_lines": summary.unsent}, ensure_ascii=False))  # fmt: skip
    else:
        print(
            f"sent {summary.sent}, not sent {summary.not_sent}, rejected {summary.rejected}  "
            f"({where}, topic {poster.topics.events})"
        )
    return 2 if summary.not_sent else 1 if summary.rejected else 0


def _say(message: str) -> None:
    from sinks.dsn import mask
    from tracker.tables import printable

    print(printable(mask(message)), file=sys.stderr)
