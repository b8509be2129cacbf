"""The local broker's Java command lines: the server itself and its short-lived tools.

Each runs from the jars ``LocalKafka`` fetched (``streams/broker.py``) with the log4j2 config it
wrote. The server takes the operator's ``TRACKER_KAFKA_JVM_OPTS``; the tools (storage format,
SCRAM users) never do, and start on the JIT's first tier instead, since they finish before the
second would pay off.

Stdlib only, like the broker module.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from config.settings import settings

SERVER_MAIN = "kafka.Kafka"
STORAGE_MAIN = "kafka.tools.StorageTool"
CONFIG_MAIN = "kafka.admin.ConfigCommand"
# log4j2 would stop its appenders in its own shutdown hook, cutting off the broker's shutdown log.
JVM_OPTS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-Djava.awt.headless=true",
    "-Dlog4j2.shutdownHookEnabled=false",
)
# The broker's short-lived tools (storage format, SCRAM users) are done before the JIT's second
# tier would pay off: ~40% less CPU and time a start on the 2-core box.
TOOL_JVM_OPTS = ("-XX:TieredStopAtLevel=1",)


def java_command(main: str, config_dir: Path, lib_dir: Path) -> list[str]:
    """`java` (from JAVA_HOME, else PATH) running `main` on the jars in `lib_dir`."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else "java"
    log4j = f"-Dlog4j2.configurationFile={config_dir / 'log4j2.properties'}"
    extra = shlex.split(settings().kafka_jvm_opts) if main == SERVER_MAIN else TOOL_JVM_OPTS
    return [java, *JVM_OPTS, *extra, log4j, "-cp", f"{lib_dir}/*", main]
