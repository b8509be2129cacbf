"""What a worker needs to know: broker, topics, role, store, the registry and rulebooks.

`tracker worker` builds a WorkerSettings from its flags; `faust -A streams.app worker` from the
environment (`WorkerSettings.from_settings`, config/settings.py: the same TRACKER_ variables as the
flags' defaults). The registry and rulebooks are loaded at worker startup (`loaded`), so merely
importing or configuring the app needs no unit registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from config.holidays import official_calendar
from config.registry import load_registry
from config.rulebooks import load_rulebooks
from config.settings import DEFAULT_KAFKA, Settings
from config.signing import Signer, signer_at
from engine import WorkCalendar
from engine.warnings import WarningPolicy
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.worker_token import token_file
from streams.kafka_auth import KafkaLogin, local_admin, login_for
from streams.topics import DEFAULT_PARTITIONS, Topics

Role = Literal["all", "processor", "sink"]
DEFAULT_BOOTSTRAP = DEFAULT_KAFKA
DEFAULT_WEB_PORT = 6066
# Records per store write when `--sink-batch` is not given. The batch path (`--role all`) writes
# up to 20,000: each write inserts into each of its tables (a data part each, a fixed ~4-10 ms of
# chDB's CPU), so a worker behind the stream spends less per record on larger writes (the
# store's part: ~38 -> ~22 µs of CPU per record from 5,000 to 20,000, bench/live_store_bench.py);
# a worker keeping up writes what each poll gives, as before. The per-record sink (`--role
# sink`) keeps 5,000: not measured there, and it holds each batch's messages from Faust's acks
# until they are written (streams/holds.py).
SINK_BATCH = 5_000
BATCH_PATH_SINK_BATCH = 20_000


def sink_batch(role: Role, given: int | None) -> int:
    """Records per store write: `given` (`--sink-batch`), else the role's default."""
    if given is not None:
        return given
    return BATCH_PATH_SINK_BATCH if role == "all" else SINK_BATCH


@dataclass(frozen=True)
class Config:
    """The registry, rulebooks and working-day calendar the engine runs with."""

    registry: Registry
    rulebooks: dict[str, Rulebook]
    calendar: WorkCalendar
    # Signs unsigned input records (the worker is their intake) and the heads of each store
    # write (config/signing.py); None: unsigned (tests of the engine path).
    signer: Signer | None = None

    @classmethod
    def load(
        cls, units: Path, rulebooks: Path | None = None, holidays: Path | None = None
    ) -> Config:
        return cls(
            load_registry(units), dict(load_rulebooks(rulebooks)), official_calendar(holidays)
        )


@dataclass(frozen=True)
class WorkerSettings:
    # The engine's configuration; None until the worker starts, which loads it from these files.
    config: Config | None = None
    units: Path | None = None
    rulebooks: Path | None = None
    holidays: Path | None = None
    role: Role = "all"
    bootstrap: str = DEFAULT_BOOTSTRAP
    topics: Topics = field(default_factory=Topics)
    partitions: int = DEFAULT_PARTITIONS
    store: str = "memory://"
    web_port: int = DEFAULT_WEB_PORT
    data_dir: Path = Path(".data")
    sink_max_records: int = SINK_BATCH
    sink_within_s: float = 0.5
    commit_interval_s: float = 0.5
    # The batch worker checkpoints a partition's engine after this many of its records (0:
    # never; also at a revoke and a clean stop): streams/checkpoints.py, docs/streaming.md.
    checkpoint_every: int = 50_000
    # How long a crashed worker's partitions wait before the group hands them to another (or to
    # the restarted) worker; Kafka's floor is 6 s (group.min.session.timeout.ms).
    session_timeout_s: float = 10.0
    warnings: WarningPolicy = field(default_factory=WarningPolicy)
    fault_file: Path | None = None  # while this file exists every store write fails (drills)
    # The worker's Kafka login, and the local broker's super user (grants the prefix's ACLs
    # when the worker creates its topics): streams/kafka_auth.py.
    login: KafkaLogin | None = None
    admin: KafkaLogin | None = None
    # The token of the web views (TRACKER_WORKER_TOKEN); None: made at start (`token_path`).
    web_token: SecretStr | None = None
    signing_key: Path | None = None  # TRACKER_SIGNING_KEY; None: <data_dir>/signing.key

    @classmethod
    def from_settings(cls, env: Settings) -> WorkerSettings:
        """The worker the environment describes (`faust -A streams.app worker`)."""
        return cls(
            units=env.units,
            rulebooks=env.rulebooks,
            holidays=env.holidays,
            role=env.role,
            bootstrap=env.kafka,
            topics=Topics(env.topic_prefix),
            partitions=env.partitions,
            store=env.store_dsn(),
            web_port=env.web_port,
            data_dir=env.data_dir,
            sink_max_records=env.sink_batch,
            sink_within_s=env.sink_within_s,
            commit_interval_s=env.commit_interval_s,
            session_timeout_s=env.session_timeout_s,
            warnings=WarningPolicy.parse(env.warn_leads),
            fault_file=env.fault_file,
            login=login_for("worker", env),
            admin=local_admin(env),
            web_token=env.worker_token,
            signing_key=env.signing_key,
        )

    def loaded(self) -> WorkerSettings:
        """These settings with the registry, rulebooks and calendar loaded (at worker startup)."""
        if self.config is not None:
            return self
        if self.units is None:
            raise ValueError("the worker needs a unit registry: set TRACKER_UNITS (or --units)")
        config = Config.load(self.units, self.rulebooks, self.holidays)
        signer = signer_at(self.signing_key, self.data_dir.resolve())
        return replace(self, config=replace(config, signer=signer))

    @property
    def engine_config(self) -> Config:
        if self.config is None:
            raise RuntimeError("the registry is loaded at worker startup (WorkerSettings.loaded)")
        return self.config

    @property
    def app_id(self) -> str:
        return self.topics.group(self.role)

    @property
    def faust_dir(self) -> Path:
        """Faust's own data directory (its table files and version marker): one per app id, so
        workers of other topic prefixes or roles can share `data_dir` without reading each
        other's local state as their own (Faust refuses to start on such a mix-up)."""
        return self.data_dir / "faust" / self.app_id

    @property
    def token_path(self) -> Path:
        """Where the worker writes the token it makes (sinks/worker_token.py)."""
        return token_file(self.store, self.data_dir.resolve(), self.web_port)

    @property
    def runs_processor(self) -> bool:
        return self.role in ("all", "processor")

    @property
    def runs_sink(self) -> bool:
        return self.role in ("all", "sink")
