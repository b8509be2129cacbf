"""A real single-node Apache Kafka 4.x broker (KRaft, broker+controller in one JVM), no Docker.

The jars come from Maven (``kafka/pom.xml``), the JVM runs detached so it outlives the CLI that
started it, and everything it writes lives under one data directory::

    <data_dir>/kafka/lib/            jars (cached; refetched only when kafka/pom.xml changes)
    <data_dir>/kafka/config/         server.properties, log4j2.properties (rewritten each start)
    <data_dir>/kafka/data/           log.dirs: topic partitions and the KRaft metadata log
    <data_dir>/kafka/logs/           server.log (log4j2), stdout.log (JVM stdout/stderr)
    <data_dir>/kafka/kafka.pid

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
import socket
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from config.settings import settings

POM = Path(__file__).resolve().parent.parent / "kafka" / "pom.xml"
SERVER_MAIN = "kafka.Kafka"
STORAGE_MAIN = "kafka.tools.StorageTool"
# log4j2 would stop its appenders in its own shutdown hook, cutting off the broker's shutdown log.
JVM_OPTS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-Djava.awt.headless=true",
    "-Dlog4j2.shutdownHookEnabled=false",
)
_POM_STAMP = ".pom-sha256"
_API_VERSIONS_KEY = 18
# Size-capped so a broker left running for weeks cannot fill the disk with its own log.
_LOG4J2 = """\
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
"""


class BrokerError(RuntimeError):
    """The broker could not be fetched, formatted, started or reached."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool  # our JVM process is alive
    ready: bool  # it answers a Kafka ApiVersions request
    pid: int | None
    bootstrap: str


class LocalKafka:
    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        controller_port: int | None = None,
        lib_dir: Path | None = None,
        pom: Path = POM,
    ) -> None:
        self.home = Path(data_dir).resolve() / "kafka"
        self.port = port
        self.controller_port = controller_port if controller_port is not None else port + 1
        self.lib_dir = Path(lib_dir).resolve() if lib_dir is not None else self.home / "lib"
        self.pom = pom
        self.config_dir = self.home / "config"
        self.log_dir = self.home / "logs"
        self.kafka_data = self.home / "data"
        self.pid_file = self.home / "kafka.pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

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
            if not _wait_exit(pid, timeout_s):
                os.kill(pid, signal.SIGKILL)
                _wait_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> BrokerStatus:
        pid = self._pid()
        ready = pid is not None and api_versions_ok("127.0.0.1", self.port)
        return BrokerStatus(running=pid is not None, ready=ready, pid=pid, bootstrap=self.bootstrap)

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

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "server.properties").write_text(self._server_properties())
        log4j2 = _LOG4J2.format(log=self.log_dir / "server.log")
        (self.config_dir / "log4j2.properties").write_text(log4j2)

    def _server_properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # A static voter set keeps formatting a plain `format -t <id>` with no --standalone.
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.kafka_data),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            # One broker: internal topics cannot have more than one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Tests create many short-lived groups; the default 3 s delay would slow each one.
            "group.initial.rebalance.delay.ms": "0",
        }
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def _format_storage(self) -> None:
        # meta.properties is written by the formatter; its presence means "formatted already".
        if (self.kafka_data / "meta.properties").is_file():
            return
        config = self.config_dir / "server.properties"
        cmd = [*self._java(STORAGE_MAIN), "format", "-t", new_cluster_id(), "-c", str(config)]
        _run(cmd, "formatting Kafka storage", timeout_s=120)

    # -- process ---------------------------------------------------------------------------

    def _java(self, main: str) -> list[str]:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else "java"
        log4j = f"-Dlog4j2.configurationFile={self.config_dir / 'log4j2.properties'}"
        return [java, *JVM_OPTS, log4j, "-cp", f"{self.lib_dir}/*", main]

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
        if not _alive(pid):
            return None
        # Guard against pid reuse after a reboot: the command line must name our config.
        cmdline = _proc_file(pid, "cmdline")
        if cmdline is not None and str(self.config_dir).encode() not in cmdline:
            return None
        return pid

    def _wait_ready(self, pid: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if api_versions_ok("127.0.0.1", self.port):
                return
            if not _alive(pid):
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


def api_versions_ok(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when host:port answers an ApiVersions v0 request without error, i.e. speaks Kafka."""
    client_id = b"tracker-probe"
    correlation_id = 0x7472
    body = struct.pack(">hhih", _API_VERSIONS_KEY, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            got_id, error_code = struct.unpack(">ih", _recv_exact(sock, min(size, 6)))
    except (OSError, struct.error):
        return False
    return bool(got_id == correlation_id and error_code == 0)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed mid-response")
        data += chunk
    return data


def _run(cmd: list[str], what: str, timeout_s: float) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-4000:]
        raise BrokerError(f"{what} failed (exit {done.returncode}): {shlex.join(cmd)}\n{output}")


def _alive(pid: int) -> bool:
    try:
        # Reap it first if it is our own exited child, or it would linger as a zombie that
        # still "exists" for kill(pid, 0).
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_file(pid, "stat")
    return stat is None or stat.rsplit(b")", 1)[-1].split()[0] != b"Z"


def _proc_file(pid: int, name: str) -> bytes | None:
    """/proc/<pid>/<name>, or None where /proc is missing or the process just vanished."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return None


def _wait_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True
