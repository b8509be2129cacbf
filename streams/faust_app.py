"""The worker's Faust app and its configuration: the module-level `app`, the settings it runs
with and its Worker class. The agents (streams/agents.py) and the startup (streams/app.py, which
`faust -A streams.app` imports) import it, since an agent is declared on an app that exists.

Configuration (docs/streaming.md, "The worker app"). Faust configures an app when its first
agent is declared, so at import: from `worker_settings()`, i.e. the environment's TRACKER_
variables (config/settings.py, `WorkerSettings.from_settings`): that is all `faust -A` needs.
`tracker worker` builds a WorkerSettings from its flags and calls `run_worker(settings)`, which
`configure()`s the app again from them (`config_from_object(force=True)`, and a new broker
transport, the one thing built from the configuration at import) before it starts. The app id
(= consumer group: per topic prefix and role) is set in Faust's `on_configured` hook.
Nothing here needs the broker or the unit registry: they are needed at worker startup
(streams/app.py).

Faust's data directory is one per app id (`WorkerSettings.faust_dir`); the Worker runs without
Faust's terminal spinner (QuietWorker).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust import transport
from faust.exceptions import AlreadyConfiguredWarning

from config.settings import settings as env_settings
from streams.holds import Holds
from streams.kafka_auth import faust_credentials
from streams.settings import WorkerSettings
from streams.topics import OUTPUT_MAX_BYTES


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner: to spin on every log record, the spinner sets
    the root logger to DEBUG, so every library debug call builds a record (a third of the CPU)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        pass


class Worker(QuietWorker):
    """The worker of this app (its `Worker` setting, so `faust -A streams.app worker` runs it
    too): on its first start, before the app starts, the worker is set up unless `run_worker`
    has done it already."""

    async def on_first_start(self) -> None:
        # The setup is streams/app.py's, which imports this module (the app it sets up).
        from streams.app import first_start

        await first_start()
        await super().on_first_start()


@dataclass
class _Chosen:
    settings: WorkerSettings | None = None


_state = _Chosen()


def worker_settings() -> WorkerSettings:
    """The settings the app runs with: those given to `configure`, else the environment's."""
    if _state.settings is not None:
        return _state.settings
    return WorkerSettings.from_settings(env_settings())


def configure(settings: WorkerSettings) -> None:
    """Run the app with these settings instead of the environment's (`tracker worker`), before
    it starts. Faust configures the app at import already (declaring an agent reads its
    configuration and builds the broker transport), from the environment: this configures it
    again from `settings` (`config_from_object(force=True)`) and replaces the transport, the
    one thing built from the configuration at import."""
    if app.started:
        raise RuntimeError("the Faust app runs already; configure() it before it starts")
    _state.settings = settings
    with warnings.catch_warnings():
        # Faust warns that parts of the program may still use the old configuration: the
        # transport, replaced below, and the agents' class (`conf.Agent`, the same in both).
        warnings.simplefilter("ignore", AlreadyConfiguredWarning)
        app.config_from_object(_Options(), force=True)
    brokers = app.conf.broker_consumer
    app.transport = transport.by_url(brokers[0])(brokers, app)


def faust_options(settings: WorkerSettings) -> dict[str, Any]:
    """The app's settings that depend on the worker's (the app id is set in `_set_id`)."""
    return {
        "broker": f"kafka://{settings.bootstrap}",
        # its consumer, producer and topic-creating admin client all log in as the worker
        "broker_credentials": faust_credentials(settings.login),
        "datadir": str(settings.faust_dir),
        "topic_partitions": settings.partitions,
        "broker_commit_interval": settings.commit_interval_s,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.session_timeout_s / 4),
        "web_port": settings.web_port,
    }


class _Options(Mapping[str, Any]):
    """The app's config source, read each time Faust configures the app: the settings of then."""

    def _now(self) -> dict[str, Any]:
        return faust_options(worker_settings())

    def __getitem__(self, key: str) -> Any:
        return self._now()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._now())

    def __len__(self) -> int:
        return len(self._now())


app = faust.App(
    "tracker",  # replaced by the worker's app id in `_set_id`
    config_source=_Options(),
    Worker=Worker,
    # No tables: engine state is rebuilt from the input topic, never read back from a
    # changelog (streams/processor.py).
    store="memory://",
    autodiscover=False,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    # Acks wait for the store while it is down; a rebalance must not wait for them.
    stream_wait_empty=False,
    producer_acks=-1,
    # Outputs of many records share a produce request; records are acked only once their
    # outputs are delivered, so this only adds a few ms of latency.
    producer_linger=0.005,
    producer_max_request_size=OUTPUT_MAX_BYTES,
    web_enabled=True,
    # Only our own views (streams/web.py), which require the worker's token: Faust's table
    # pages serve table contents to anyone who reaches the port, its router pages the
    # cluster's layout, its graph, stats and metrics pages the worker's internals.
    web_tables_enabled=False,
    web_router_enabled=False,
    web_graph_enabled=False,
    web_stats_enabled=False,
    web_metrics_enabled=False,
    web_bind="127.0.0.1",
    web_host="127.0.0.1",
)


def _set_id(sender: Any, conf: Any, **kwargs: Any) -> None:
    conf.id = worker_settings().app_id  # the consumer group: per topic prefix and role


app.on_configured.connect(cast(Any, _set_id))
holds = Holds(app)
HeldTopic = holds.topic_class()
