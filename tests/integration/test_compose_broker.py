"""The compose stack's broker script (kafka/compose/broker.sh), run on this host with the local
broker's jars: no Docker engine is needed to see that it comes up locked down, that the
`kafka-acls` step grants what the services need, and that a password changed in .env takes
effect at the next start."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError

from streams.broker import LocalKafka, new_cluster_id
from streams.kafka_auth import KafkaLogin
from streams.topics import Topics
from tests.integration.kafka_fixture import free_ports, kafka_lib_cache
from tests.integration.test_kafka_acls import consume, produce, refused

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "kafka" / "compose" / "broker.sh"
PASSWORDS = {
    "KAFKA_ADMIN_PASSWORD": "admin-0123456789",
    "KAFKA_INTAKE_PASSWORD": "intake-0123456789",
    "KAFKA_WORKER_PASSWORD": "worker-0123456789",
    "KAFKA_TICKER_PASSWORD": "ticker-0123456789",
}


@dataclass
class ComposeBroker:
    env: dict[str, str]
    work: Path
    bootstrap: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self, **changes: str) -> None:
        self.env.update(changes)
        (self.work / "ready").unlink(missing_ok=True)
        log = open(self.work.parent / "broker.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            ["bash", str(SCRIPT)], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 180
        while not (self.work / "ready").is_file():
            if self.proc.poll() is not None:
                pytest.fail(f"broker.sh exited {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"broker.sh not ready after 180 s:\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the script passes it on to the JVM
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log_tail(self) -> str:
        text = (self.work.parent / "broker.log").read_text(errors="replace")
        return "\n".join(line for line in text.splitlines() if line.startswith("kafka:"))[-3000:]

    def login(self, user: str) -> KafkaLogin:
        return KafkaLogin(user, self.env[f"KAFKA_{user.upper()}_PASSWORD"])


@pytest.fixture
def compose_broker(tmp_path: Path) -> Iterator[ComposeBroker]:
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    lib = kafka_lib_cache()
    LocalKafka(tmp_path, lib_dir=lib).fetch_jars()
    port, controller_port = free_ports(2)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "CLUSTER_ID": new_cluster_id(),
        **PASSWORDS,
        "KAFKA_LIBS": str(lib),
        "KAFKA_DATA_DIR": str(tmp_path / "data"),
        "TRACKER_KAFKA_WORK": str(tmp_path / "work"),
        "KAFKA_BIND_HOST": "127.0.0.1",
        "KAFKA_ADVERTISED_HOST": "127.0.0.1",
        "KAFKA_CLIENT_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller_port),
    }
    broker = ComposeBroker(env, tmp_path / "work", f"127.0.0.1:{port}")
    try:
        yield broker
    finally:
        broker.stop()


def grant_as_the_compose_step(broker: ComposeBroker) -> str:
    """`python -m streams.kafka_acls --topic-prefix tracker`, with the service's environment."""
    env = {
        "PATH": os.environ["PATH"],
        "TRACKER_KAFKA": broker.bootstrap,
        "TRACKER_KAFKA_USER": "admin",
        "TRACKER_KAFKA_PASSWORD": broker.env["KAFKA_ADMIN_PASSWORD"],
    }
    done = subprocess.run(
        [sys.executable, "-m", "streams.kafka_acls", "--topic-prefix", "tracker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert broker.env["KAFKA_ADMIN_PASSWORD"] not in done.stdout + done.stderr
    return done.stdout


def test_the_compose_broker_is_locked_down_and_takes_new_passwords(
    compose_broker: ComposeBroker,
) -> None:
    compose_broker.start()
    assert "ACLs for prefix 'tracker'" in grant_as_the_compose_step(compose_broker)
    topics, bootstrap = Topics("tracker"), compose_broker.bootstrap
    intake, worker = compose_broker.login("intake"), compose_broker.login("worker")

    async def first_boot() -> None:
        await produce(bootstrap, intake, topics.events, b"posted")
        assert await consume(bootstrap, worker, topics.events, topics.group("all")) == [b"posted"]
        await refused(produce(bootstrap, None, topics.events, b"x"), KafkaConnectionError)

    asyncio.run(first_boot())
    # nothing secret in what the script printed, nor in the files it leaves readable
    log = (compose_broker.work.parent / "broker.log").read_text(errors="replace")
    for password in PASSWORDS.values():
        assert password not in log
    assert not list(compose_broker.work.glob("*.args")) and not list(
        compose_broker.work.glob("scram*")
    )
    assert (compose_broker.work.stat().st_mode & 0o077) == 0

    # .env gets a new worker password; `docker compose up -d` restarts the broker with it
    compose_broker.stop()
    compose_broker.start(KAFKA_WORKER_PASSWORD="worker-rotated-0123")

    async def second_boot() -> None:
        await refused(consume(bootstrap, worker, topics.events), KafkaConnectionError)
        rotated = compose_broker.login("worker")
        assert await consume(bootstrap, rotated, topics.events) == [b"posted"]
        # the volume kept the ACLs and the other users
        await produce(bootstrap, intake, topics.events, b"after the restart")

    asyncio.run(second_boot())
