"""Every setting the tracker reads from its environment, in one model (prefix `TRACKER_`).

Commands take these as the defaults of their options, so an option and its variable mean the same
in every command; a flag given on the command line wins. Secrets (a DSN may carry a password, the
Grafana token) are `SecretStr`: they never show in a repr, a log line or an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.defaults import DEFAULT_KAFKA as DEFAULT_KAFKA

DEFAULT_WORKER_URL = "http://127.0.0.1:6066"
DEFAULT_SERVE_HOST = "127.0.0.1"
DEFAULT_SERVE_PORT = 8000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRACKER_", env_ignore_empty=True, extra="ignore", frozen=True
    )

    data: Path = Field(Path(".data"), description="data directory: embedded store, broker, Faust")
    store: SecretStr | None = Field(None, description="store DSN (default: chDB under `data`)")
    kafka: str = Field(DEFAULT_KAFKA, description="Kafka bootstrap servers, HOST:PORT[,...]")
    kafka_user: str | None = Field(None, description="SASL user this process logs in to Kafka as")
    kafka_password: SecretStr | None = Field(None, description="that Kafka user's password")
    kafka_mechanism: str = Field("SCRAM-SHA-512", description="SASL mechanism of that login")
    kafka_credentials: Path | None = Field(
        None,
        description="folder of per-principal Kafka logins (default: `data`/kafka/credentials)",
    )
    units: Path | None = Field(None, description="unit registry YAML")
    rulebooks: Path | None = Field(None, description="rulebook directory (default: shipped)")
    holidays: Path | None = Field(None, description="holiday override YAML")
    worker_url: str = Field(DEFAULT_WORKER_URL, description="a running worker's web address")
    worker_token: SecretStr | None = Field(
        None,
        description="token of the worker's read views (default: one the worker makes at start, "
        "in a file beside its embedded store or in its data dir)",
    )
    grafana_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("TRACKER_GRAFANA_TOKEN", "GRAFANA_TOKEN"),
        description="Grafana service-account token, or USER:PASSWORD",
    )
    debug: bool = Field(False, description="show tracebacks of internal errors")
    write_fault: str = Field("", description="store-write fault drill: kill:N or error:N")
    writer: str = Field(
        "process",
        description="`tracker ingest` into an embedded store: its inserts in a writer process "
        "of their own (process) or in the CLI's (inline)",
    )
    maven_opts: str = Field("", description="extra options for Maven when fetching Kafka")
    kafka_jvm_opts: str = Field(
        "", description="extra JVM options of the local broker (`tracker kafka start`, tests)"
    )
    principals: Path | None = Field(
        None, description="`tracker serve` principals file (default: <data>/principals.json)"
    )
    token: SecretStr | None = Field(None, description="API token of a `tracker serve` client")
    signing_key: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) signing chain heads and events "
        "(default: <data>/signing.key, made 0600 on first use)",
    )
    serve_host: str = Field(DEFAULT_SERVE_HOST, description="address `tracker serve` binds")
    serve_port: int = Field(DEFAULT_SERVE_PORT, ge=1, le=65535, description="its port")
    serve_backlog: int = Field(
        100_000,
        ge=1,
        description="events `tracker serve` (embedded) accepts into its journal ahead of the store",
    )
    serve_linger_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="how long `tracker serve` (embedded) gathers a trickle of posts into one write",
    )
    serve_url: str = Field(
        f"http://{DEFAULT_SERVE_HOST}:{DEFAULT_SERVE_PORT}",
        description="a running `tracker serve`'s address, for its clients",
    )

    # The worker (`tracker worker`, or `faust -A streams.app worker`: streams/faust_app.py).
    topic_prefix: str = Field("tracker", description="prefix of the topics and consumer groups")
    role: Literal["all", "processor", "sink"] = Field("all", description="what the worker runs")
    partitions: int = Field(4, ge=1, description="input partitions, when creating the topics")
    web_port: int = Field(6066, ge=1, le=65535, description="the worker's web port (read views)")
    sink_batch: int = Field(5_000, ge=1, description="most records the sink writes at once")
    sink_within_s: float = Field(0.5, gt=0, description="longest the sink waits to fill a batch")
    commit_interval_s: float = Field(0.5, gt=0, description="how often offsets are committed")
    session_timeout_s: float = Field(
        10.0, gt=0, description="how long a dead worker keeps its partitions (Kafka: >= 6 s)"
    )
    warn_leads: str = Field("3,1", description="deadline warning leads, working days: 3,1")
    fault_file: Path | None = Field(
        None, description="while this file exists every store write fails (outage drills)"
    )

    @property
    def data_dir(self) -> Path:
        return self.data.resolve()

    def principals_path(self) -> Path:
        return self.principals if self.principals is not None else self.data_dir / "principals.json"

    def store_dsn(self) -> str:
        """The store to use: TRACKER_STORE, else the embedded chDB store in the data directory."""
        if self.store is not None:
            return self.store.get_secret_value()
        return f"chdb://{self.data_dir / 'chdb'}"


def settings() -> Settings:
    """The settings as the environment says now (read on each call: tests and the demo set
    variables for child processes, and a CLI run reads them once)."""
    return Settings()


def data_dir() -> Path:
    return settings().data_dir


def default_store() -> str:
    return settings().store_dsn()
