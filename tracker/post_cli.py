"""`tracker post`: check events against the contract, then produce them to the input topic.

Everything is checked before the first connection: the flags while parsing (tracker/options.py),
the registry and every event by `streams.post.post_within`, which contacts the broker only for
events that passed.
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
from tracker.stream_cli import kafka_errors, topics_of

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


def cmd_post(
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            metavar="FILE|-",
            help="Events to post: JSONL, a JSON object or a JSON array; - reads stdin.",
            show_default="none: build one event from the flags below",
        ),
    ] = None,
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
            "broker has not confirmed by then is reported as not sent.",
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
    """Check events against the contract and produce them to the input topic.

    Exit 0: every event sent; 1: some lines rejected, every other one sent; 2: some events not sent (broker unreachable, failing or too slow), or nothing could be read at all.
    """
    from datetime import UTC, datetime

    from config.registry import load_registry
    from streams.post import Poster, event_from_flags, line_ranges, post_within, raw_events

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
    broker, source = options.broker_of(bootstrap)
    registry = load_registry(options.units_path(units))
    if file is not None:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
        lines = list(raw_events(data))
    else:
        lines = list(raw_events(event_from_flags(fields, datetime.now(UTC))))
    poster = Poster(broker, topics_of(topic_prefix), registry, partitions)
    with kafka_errors():
        summary = asyncio.run(post_within(poster, lines, timeout))
    where = f"broker {broker} ({source})"
    for number, why in summary.problems:
        _say(f"tracker post: rejected: line {number}: {why}")
    if summary.not_sent:
        lines_word = "line" if len(summary.unsent) == 1 else "lines"
        again = (  # an id made up for flags would change if the command were simply repeated
            f"post it again with --event-id {json.loads(lines[0].raw)['event_id']}"
            if event_type is not None
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
