"""`tracker post` as a client of `tracker serve` (issue 10): what it refuses before any network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tracker.cli import main

TICK = ["post", "--type", "clock.tick"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACKER_TOKEN", raising=False)
    monkeypatch.setenv("TRACKER_SERVE_URL", f"http://127.0.0.1:{_closed_port()}")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # no token anywhere: said in one line, naming both ways to give one
        ([], "TRACKER_TOKEN or give --token-file"),
        # Kafka options belong to --direct, an operator's tool
        (["--bootstrap", "127.0.0.1:9"], "--bootstrap: for --direct only"),
        (
            ["--partitions", "2", "--topic-prefix", "p"],
            "--topic-prefix, --partitions: for --direct",
        ),
        (["--units", "u.yaml"], "--units: for --direct only"),
    ],
)
def test_refused_before_the_network(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*TICK, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_a_token_file_is_read_and_an_empty_one_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    assert main([*TICK, "--token-file", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err
    empty.write_text("trk.0123456789abcdef." + "A" * 43 + "\n")
    assert main([*TICK, "--token-file", str(empty)]) == 2  # a server that is not there
    assert "cannot reach tracker serve" in capsys.readouterr().err


def test_the_token_from_the_environment_is_never_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "trk.0123456789abcdef." + "S" * 43
    monkeypatch.setenv("TRACKER_TOKEN", secret)
    assert main([*TICK, "--json"]) == 2
    out, err = capsys.readouterr()
    assert secret not in out + err and "cannot reach" in err
