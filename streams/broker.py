"""A real single-node Apache Kafka 4.x broker (KRaft, broker+controller in one JVM), no Docker.

The jars come from Maven (``kafka/pom.xml``), the JVM runs detached so it outlives the CLI that
started it, and everything it writes lives under one data directory::

    <data_dir>/kafka/lib/            jars (cached; refetched only when kafka/pom.xml changes)
    <data_dir>/kafka/config/         server.properties, log4j2.properties (rewritten each start;
                                     0700, server.properties 0600: it holds the broker's logins)
    <data_dir>/kafka/credentials/    one SCRAM login per principal, <name>.properties (0700/0600)
    <data_dir>/kafka/data/           log.dirs: topic partitions and the KRaft metadata log
    <data_dir>/kafka/logs/           server.log (log4j2), stdout.log (JVM stdout/stderr)
    <data_dir>/kafka/kafka.pid

The broker is locked down (``secure=True``, the default): its one client listener speaks
SASL/SCRAM-SHA-512 only, so anonymous clients are refused, and the StandardAuthorizer allows
nothing an ACL does not (``streams/kafka_acls.py`` grants them per topic prefix). The principals'
SCRAM users are written into the metadata log when the storage is formatted; their passwords are
generated then and kept only in the credentials folder. The controller listener speaks SASL/PLAIN
with a password made at each start, so no one but the broker itself can use it. Its config files
come from ``streams/broker_config.py``, its Java command lines from ``streams/broker_jvm.py``;
readiness is a raw Kafka request (``streams/kafka_probe.py``), the JVM's liveness is read by pid
(``streams/processes.py``).

Stdlib only, so ``tracker kafka start`` works before any Kafka client is importable.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from config.settings import settings
from streams.broker_config import (
    CONTROLLER_USER,
    PLAIN_LOGIN_MODULE,
    SUPER_USER,
    log4j2_properties,
    server_properties,
)
from streams.broker_jvm import CONFIG_MAIN, SERVER_MAIN, STORAGE_MAIN, java_command
from streams.kafka_auth import (
    MECHANISM,
    PRINCIPALS,
    CredentialStore,
    KafkaLogin,
    java_properties,
    new_password,
    write_private,
)
from streams.kafka_probe import api_versions_ok
from streams.processes import alive, proc_file, wait_exit

POM = Path(__file__).resolve().parent.parent / "kafka" / "pom.xml"
# Written once the storage was formatted with the principals' SCRAM users.
_SCRAM_STAMP = ".scram-users"
_POM_STAMP = ".pom-sha256"


class BrokerError(RuntimeError):
    """The broker could not be fetched, formatted, started or reached."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool  # our JVM process is alive
    ready: bool  # it answers a Kafka ApiVersions request
    pid: int | None
    bootstrap: str
    secure: bool = True


class LocalKafka:
    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        controller_port: int | None = None,
        lib_dir: Path | None = None,
        pom: Path = POM,
        secure: bool = True,
    ) -> None:
        self.home = Path(data_dir).resolve() / "kafka"
        self.secure = secure
        self.port = port
        self.controller_port = controller_port if controller_port is not None else port + 1
        self.lib_dir = Path(lib_dir).resolve() if lib_dir is not None else self.home / "lib"
        self.pom = pom
        self.config_dir = self.home / "config"
        self.log_dir = self.home / "logs"
        self.kafka_data = self.home / "data"
        self.pid_file = self.home / "kafka.pid"
        self.credentials = CredentialStore(self.home / "credentials")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def login(self, principal: str) -> KafkaLogin:
        """A principal's login (``admin``, ``intake``, ``worker``, ``ticker``)."""
        return self.credentials.load(principal)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 90.0) -> None:
        pid = self._pid()
        if pid is not None:
            # Already launched (maybe still booting, maybe by another process): just wait.
            self._wait_ready(pid, timeout_s)
            return
        if api_versions_ok("127.0.0.1", self.port):
            raise BrokerError(f"{self.bootstrap} is already served by a process we did not start")
        self.fetch_jars()
        if self._formatted_open():
            self._add_users(timeout_s)  # once: a store from before the lockdown
        self._write_config()
        self._format_storage()
        pid = self._launch()
        self._wait_ready(pid, timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        # SIGTERM runs Kafka's controlled shutdown, which flushes logs and checkpoints offsets.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            if not wait_exit(pid, timeout_s):
                os.kill(pid, signal.SIGKILL)
                wait_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)

    def rotate(self, principal: str) -> Path:
        """Give `principal` a new password on the running broker, then save it; returns its
        file. Clients logged in keep their connections; new ones need the new password. A
        rotated admin password reaches the broker's own config at its next start."""
        if not self.secure:
            raise BrokerError("this broker takes no logins (secure=False)")
        if principal not in PRINCIPALS:
            raise BrokerError(f"no such principal {principal!r} (one of {', '.join(PRINCIPALS)})")
        if self._pid() is None:
            raise BrokerError("the broker is not running: start it, then rotate")
        new = KafkaLogin(principal, new_password(), MECHANISM)
        admin = self.config_dir / "rotate-admin.properties"
        write_private(admin, java_properties(self.login(SUPER_USER)))
        try:
            self._set_scram(new, admin)
        finally:
            admin.unlink(missing_ok=True)
        return self.credentials.save(new)

    def status(self) -> BrokerStatus:
        pid = self._pid()
        ready = pid is not None and api_versions_ok("127.0.0.1", self.port)
        return BrokerStatus(
            running=pid is not None,
            ready=ready,
            pid=pid,
            bootstrap=self.bootstrap,
            secure=self.secure,
        )

    # -- jars ------------------------------------------------------------------------------

    def fetch_jars(self) -> None:
        """Copy Kafka's runtime classpath into lib_dir; a no-op while the pom is unchanged."""
        if not self.pom.is_file():
            raise BrokerError(f"{self.pom} not found: run from a source checkout")
        digest = hashlib.sha256(self.pom.read_bytes()).hexdigest()
        stamp = self.lib_dir / _POM_STAMP
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return
        # Fetch into a sibling and swap it in, so an interrupted fetch never looks complete.
        staging = self.lib_dir.with_name(f"{self.lib_dir.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        cmd = ["mvn", "-q", "-B", "-f", str(self.pom), "dependency:copy-dependencies"]
        cmd += [
            f"-DoutputDirectory={staging}",
            *shlex.split(settings().maven_opts),
        ]
        _run(cmd, "fetching Kafka jars with Maven", timeout_s=900)
        (staging / _POM_STAMP).write_text(digest + "\n")
        if stamp.is_file() and stamp.read_text().strip() == digest:
            # A concurrent fetch (another test session) won; its jars may already be in use.
            shutil.rmtree(staging, ignore_errors=True)
            return
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        staging.rename(self.lib_dir)

    # -- config and storage ----------------------------------------------------------------

    def _formatted_open(self) -> bool:
        """Formatted, but not with our SCRAM users (a store from before the lockdown)."""
        stamp = self.credentials.folder / _SCRAM_STAMP
        formatted = (self.kafka_data / "meta.properties").is_file()
        return self.secure and formatted and not stamp.is_file()

    def _add_users(self, timeout_s: float) -> None:
        """Write the SCRAM users into a store formatted without them, keeping its topics: the
        broker runs once with PLAIN also on the client listener, for one super user whose
        password is made now, and that user creates the others; then it stops."""
        migration = KafkaLogin(CONTROLLER_USER, new_password())
        self._write_config(bootstrap_login=migration)
        pid = self._launch()
        try:
            self._wait_ready(pid, timeout_s)
            plain = self.config_dir / "migrate-client.properties"
            write_private(
                plain,
                f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                f'sasl.jaas.config={PLAIN_LOGIN_MODULE} required username="{migration.username}" '
                f'password="{migration.password}";\n',
            )
            try:
                for name in PRINCIPALS:
                    self._set_scram(self.credentials.load(name), plain)
            finally:
                plain.unlink(missing_ok=True)
        finally:
            self.stop()
        write_private(self.credentials.folder / _SCRAM_STAMP, "\n".join(PRINCIPALS) + "\n")

    def _set_scram(self, login: KafkaLogin, client_properties: Path) -> None:
        """Set a SCRAM user's password on the running broker (Kafka's ConfigCommand). Both go
        in through files, so no password is on its command line; the value of an
        --add-config-file entry has no brackets."""
        change = self.config_dir / f"scram-{login.username}.properties"
        write_private(change, f"{login.mechanism}=password={login.password}\n")
        cmd = [*self._java(CONFIG_MAIN), "--bootstrap-server", self.bootstrap]
        cmd += ["--command-config", str(client_properties), "--alter"]
        cmd += ["--add-config-file", str(change), "--entity-type", "users"]
        cmd += ["--entity-name", login.username]
        try:
            _run(cmd, f"setting the password of Kafka user {login.username}", timeout_s=120)
        finally:
            change.unlink(missing_ok=True)

    def _write_config(self, bootstrap_login: KafkaLogin | None = None) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.config_dir, 0o700)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.secure:
            self.credentials.ensure(PRINCIPALS)
        text = server_properties(
            self.port,
            self.controller_port,
            self.kafka_data,
            self.credentials,
            self.secure,
            bootstrap_login,
        )
        write_private(self.config_dir / "server.properties", text)
        log4j2 = log4j2_properties(self.log_dir / "server.log")
        (self.config_dir / "log4j2.properties").write_text(log4j2)

    def _format_storage(self) -> None:
        # meta.properties is written by the formatter; its presence means "formatted already".
        stamp = self.credentials.folder / _SCRAM_STAMP
        if (self.kafka_data / "meta.properties").is_file():
            return
        config = self.config_dir / "server.properties"
        cmd = [*self._java(STORAGE_MAIN), "format", "-t", new_cluster_id(), "-c", str(config)]
        if not self.secure:
            _run(cmd, "formatting Kafka storage", timeout_s=120)
            return
        # The SCRAM users go in through an argument file (argparse4j's @file), so no password
        # is ever on a command line that other local users could read from /proc.
        args = self.config_dir / "format-scram.args"
        lines = []
        for name in PRINCIPALS:
            login = self.credentials.load(name)
            lines += ["--add-scram", f"{login.mechanism}=[name={name},password={login.password}]"]
        write_private(args, "\n".join(lines) + "\n")
        try:
            _run([*cmd, f"@{args}"], "formatting Kafka storage", timeout_s=120)
        finally:
            args.unlink(missing_ok=True)
        write_private(stamp, "\n".join(PRINCIPALS) + "\n")

    # -- process ---------------------------------------------------------------------------

    def _java(self, main: str) -> list[str]:
        return java_command(main, self.config_dir, self.lib_dir)

    def _launch(self) -> int:
        cmd = [*self._java(SERVER_MAIN), str(self.config_dir / "server.properties")]
        with open(self.log_dir / "stdout.log", "ab") as out:
            # A new session detaches the JVM from our terminal, so Ctrl-C on the CLI spares it.
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def _pid(self) -> int | None:
        """The pid from the pid file, if that process is alive and is our broker."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not alive(pid):
            return None
        # Guard against pid reuse after a reboot: the command line must name our config.
        cmdline = proc_file(pid, "cmdline")
        if cmdline is not None and str(self.config_dir).encode() not in cmdline:
            return None
        return pid

    def _wait_ready(self, pid: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if api_versions_ok("127.0.0.1", self.port):
                return
            if not alive(pid):
                raise BrokerError(f"Kafka exited during startup\n{self._log_tail()}")
            time.sleep(0.5)
        raise BrokerError(
            f"Kafka not ready on {self.bootstrap} after {timeout_s}s\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        parts = []
        for name in ("stdout.log", "server.log"):
            path = self.log_dir / name
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()
                parts.append(f"--- {path} ---\n" + "\n".join(_first_errors(text) + text[-lines:]))
        return "\n".join(parts) or "(no broker log yet)"


def _first_errors(lines: list[str], limit: int = 5) -> list[str]:
    """The first ERROR lines with the exception line after each: the cause of a failed start
    sits there, while the tail holds only the shutdown that followed it."""
    picked: list[str] = []
    for i, line in enumerate(lines):
        if "] ERROR " in line or "] FATAL " in line:
            picked += lines[i : i + 2]
            if len(picked) >= 2 * limit:
                break
    return [*picked, "..."] if picked else []


def new_cluster_id() -> str:
    """A Kafka-style cluster id: a random UUID, base64url without padding (22 chars)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # would be parsed as a command-line flag
            return cluster_id


# Beside the broker, not in streams/processes.py: a tool that fails is a BrokerError.
def _run(cmd: list[str], what: str, timeout_s: float) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-4000:]
        raise BrokerError(f"{what} failed (exit {done.returncode}): {shlex.join(cmd)}\n{output}")
