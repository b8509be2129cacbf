"""The options several `tracker` commands share, each with one help text and one default.

A default comes from `config.settings.Settings` when the command runs (never when the parser is
built: tests and the demo change the environment between runs), so `--store`, `--units`,
`--rulebooks`, `--holidays`, `--bootstrap` and `--token` mean the same in every command. Values
the network part would only trip over later (a broker address, a topic prefix, a partition
count) are checked while parsing, before anything connects.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from config.defaults import DEFAULT_KAFKA
from tracker.errors import UserError
from tracker.instants import parse_instant

if TYPE_CHECKING:
    from config.settings import Settings

# `tracker --help` sections
INGEST_AND_READ = "Ingest and read"
LIVE = "Live (Kafka)"
OPERATIONS = "Dashboards and access"
AUDIT = "Audit"
DEMO = "Demo"


def current() -> Settings:
    """The settings as the environment says now; a variable that does not parse is the user's
    to fix, in one line. (pydantic-settings loads here, not at start: a command given --store
    never needs it.)"""
    from pydantic import ValidationError

    from config.settings import settings

    try:
        return settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "TRACKER_" + str(first["loc"][0]).upper() if first["loc"] else "a TRACKER_ variable"
        raise UserError(f"${name}: {first['msg']}") from None


def positive(value: float) -> float:
    """A duration that must be more than zero (an option's callback)."""
    if not value > 0:
        raise typer.BadParameter(f"{value:g} is not a positive number of seconds")
    return value


# -- as of an instant (issue 11) ---------------------------------------------------------------


def instant(text: str | None) -> datetime | None:
    """An `--as-of` value as the instant (None: now, the store's latest outputs): see
    tracker/instants.py; a value that is not one is a usage error of --as-of."""
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--as-of") from None


def _check_instant(text: str | None) -> str | None:
    instant(text)  # refused while parsing, before the store is opened
    return text


AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        metavar="RFC3339",
        help="Show what the tracker showed at this instant of event time, e.g. "
        '2018-06-30T00:00:00+08:00 (docs/semantics.md, "As of an instant").',
        show_default="now: the latest outputs",
        callback=_check_instant,
    ),
]


# -- store, registry, rulebooks, holidays ------------------------------------------------------

Store = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="DSN",
        help="The store: chdb:///DIR, or http(s)://USER:PASS@HOST:8123/?database=NAME.",
        show_default="$TRACKER_STORE, else chDB under $TRACKER_DATA (./.data)",
    ),
]
Units = Annotated[
    Path | None,
    typer.Option(
        "--units",
        metavar="UNITS.yaml",
        help="Unit registry: units, their tiers and the assessments of each year.",
        show_default="$TRACKER_UNITS",
    ),
]
Rulebooks = Annotated[
    Path | None,
    typer.Option(
        "--rulebooks",
        metavar="DIR",
        help="Folder of rulebook YAML files.",
        show_default="$TRACKER_RULEBOOKS, else the shipped rulebooks",
    ),
]
Holidays = Annotated[
    Path | None,
    typer.Option(
        "--holidays",
        metavar="FILE",
        help="Holiday list for years the official calendar data does not know.",
        show_default="$TRACKER_HOLIDAYS, else the official calendar only",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def store_dsn(given: str | None) -> str:
    return given or current().store_dsn()


def units_path(given: Path | None) -> Path:
    path = given or current().units
    if path is None:
        raise UserError("--units UNITS.yaml is required (or set TRACKER_UNITS)")
    return path


def rulebooks_dir(given: Path | None) -> Path | None:
    return given or current().rulebooks


def holidays_file(given: Path | None) -> Path | None:
    return given or current().holidays


# -- Kafka -------------------------------------------------------------------------------------

_TOPIC_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,200}")


def _check_bootstrap(value: str | None) -> str | None:
    if value is None:
        return None
    for server in value.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise typer.BadParameter(f"{server.strip()!r} is not HOST:PORT")
    return value


def _check_topic_prefix(value: str) -> str:
    if not _TOPIC_PREFIX.fullmatch(value):
        raise typer.BadParameter(
            f"{value!r}: Kafka topic names take letters, digits, '.', '_' and '-' only"
        )
    return value


Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        metavar="HOST:PORT",
        help="The Kafka broker(s), HOST:PORT,... .",
        show_default=f"$TRACKER_KAFKA, else {DEFAULT_KAFKA}",
        callback=_check_bootstrap,
    ),
]
TopicPrefix = Annotated[
    str,
    typer.Option(
        "--topic-prefix",
        metavar="PREFIX",
        help="Topic names start with it: PREFIX.events, PREFIX.ledger, ...",
        callback=_check_topic_prefix,
    ),
]
Partitions = Annotated[
    int,
    typer.Option(
        "--partitions", min=1, metavar="N", help="Partitions of the topics when creating them."
    ),
]


def broker_of(given: str | None) -> tuple[str, str]:
    """The broker to use and where that came from, to say with the results: a forgotten
    --bootstrap must not pass unnoticed when some other broker answers on the default port."""
    if given:
        return given, "--bootstrap"
    now = current()
    if "kafka" in now.model_fields_set:
        _check_env_bootstrap(now.kafka)
        return now.kafka, "$TRACKER_KAFKA"
    return now.kafka, "default: no --bootstrap, no $TRACKER_KAFKA"


def _check_env_bootstrap(value: str) -> None:
    try:
        _check_bootstrap(value)
    except typer.BadParameter as exc:
        raise UserError(f"$TRACKER_KAFKA: {exc.message}") from None


def bootstrap(given: str | None) -> str:
    return broker_of(given)[0]
