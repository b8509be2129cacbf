"""The local broker's JVM command lines: the server takes the operator's extra options, the
short-lived tools start on the JIT's first tier (streams/broker_jvm.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.broker import LocalKafka
from streams.broker_jvm import CONFIG_MAIN, SERVER_MAIN, STORAGE_MAIN


@pytest.mark.parametrize(
    ("env", "main", "extra"),
    [
        ("", SERVER_MAIN, []),  # the default: the broker as the JVM starts it
        ("-XX:TieredStopAtLevel=1 -Xmx1g", SERVER_MAIN, ["-XX:TieredStopAtLevel=1", "-Xmx1g"]),
        ("-Xmx1g", STORAGE_MAIN, ["-XX:TieredStopAtLevel=1"]),  # tools: never the broker's
        ("", CONFIG_MAIN, ["-XX:TieredStopAtLevel=1"]),
    ],
)
def test_the_jvm_options_of_each_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str, main: str, extra: list[str]
) -> None:
    monkeypatch.setenv("TRACKER_KAFKA_JVM_OPTS", env)
    cmd = LocalKafka(tmp_path)._java(main)
    assert cmd[-1] == main
    options = cmd[1 : cmd.index("-cp")]
    assert [
        o for o in options if not o.startswith(("-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-D"))
    ] == extra
