"""Opening a backend for `tracker serve`: the embedded pipeline, or a Kafka producer."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from config.holidays import official_calendar
from config.registry import load_registry
from config.rulebooks import load_rulebooks
from config.settings import settings
from engine import WorkCalendar
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks import Store, open_store
from streams.kafka_auth import KafkaLogin
from streams.topics import DEFAULT_PARTITIONS, Topics
from tracker.pipeline import Tracker
from tracker.registry_guard import check_registry_change
from tracker.serve.embedded import EmbeddedService
from tracker.serve.service import Service, ServiceUnavailable
from tracker.serve.signing import intake_signer


def open_embedded(
    store_dsn: str,
    units: Path | None,
    rulebooks_dir: Path | None = None,
    holidays: Path | None = None,
    *,
    replace_registry: bool = False,
    lock_timeout_s: float = 30.0,
) -> EmbeddedService:
    """The store with the registry and rulebooks it records, or those given (recorded then, as
    `tracker ingest` records them: a registry that drops what the store's events need is
    refused unless `replace_registry`)."""
    calendar = official_calendar(holidays)
    sink = open_store(store_dsn)
    try:
        registry, books = _config(sink, units, rulebooks_dir, replace_registry, calendar)
        return EmbeddedService(
            sink,
            registry,
            books,
            calendar,
            lock_timeout_s=lock_timeout_s,
            journal_dir=journal_dir(store_dsn),
            max_backlog=settings().serve_backlog,
            linger_s=settings().serve_linger_s,
        )
    except BaseException:
        sink.close()
        raise


def journal_dir(store_dsn: str) -> Path | None:
    """Where the intake journal of a store lives: beside a chDB store's directory
    (`DIR.journal/DATABASE`: it belongs to that store, and goes where it goes), else in the data
    directory under a digest of the DSN; none for a memory store."""
    if store_dsn.startswith("memory:"):
        return None
    parts = urlsplit(store_dsn)
    database = parse_qs(parts.query).get("database", ["default"])[0]
    if parts.scheme == "chdb":
        where = Path(store_dsn.removeprefix("chdb://").split("?")[0])
        return where.with_name(where.name + ".journal") / _safe(database)
    digest = hashlib.sha256(store_dsn.encode()).hexdigest()[:16]
    return settings().data_dir / "journal" / digest


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "default"


def _config(
    sink: Store,
    units: Path | None,
    rulebooks_dir: Path | None,
    replace_registry: bool,
    calendar: WorkCalendar,
) -> tuple[Registry, dict[str, Rulebook]]:
    stored = sink.load_config()
    if units is None:
        if stored is None:
            raise ServiceUnavailable(
                "the store holds no registry yet: give --units UNITS.yaml (or set TRACKER_UNITS)"
            )
        return stored
    registry = load_registry(units)
    books = dict(load_rulebooks(rulebooks_dir))
    if stored is not None and stored != (registry, books):
        # a run that stopped half-way is finished with the configuration it began with
        if sink.committed_seq() < sink.next_seq() - 1:
            Tracker(sink, *stored, calendar, signer=intake_signer()).restore()
        check_registry_change(sink, registry, replace=replace_registry)
    sink.save_config(registry, books)
    return registry, books


def open_kafka(
    bootstrap: str,
    store_dsn: str,
    units: Path | None,
    rulebooks_dir: Path | None = None,
    *,
    topic_prefix: str = "tracker",
    partitions: int = DEFAULT_PARTITIONS,
    lock_timeout_s: float = 30.0,
    login: KafkaLogin | None = None,
    admin: KafkaLogin | None = None,
) -> Service:
    """A producer to the events topic, logged in as `login` (the intake's); the registry checks
    units before anything is sent."""
    from tracker.serve.kafka_backend import KafkaService

    if units is None:
        raise ServiceUnavailable(
            "with --bootstrap, give --units UNITS.yaml (the worker's registry)"
        )
    return KafkaService(
        bootstrap,
        load_registry(units),
        dict(load_rulebooks(rulebooks_dir)),
        store_dsn,
        topics=Topics(topic_prefix),
        partitions=partitions,
        lock_timeout_s=lock_timeout_s,
        login=login,
        admin=admin,
    )
