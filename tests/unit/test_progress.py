"""Progress on stderr for long work (issue 9 item 5): shown on a terminal, absent in a pipe, and
never on stdout. The command-level check runs `python -m tracker ingest` with its stderr on a
pseudo-terminal (the `pty` module), then on a pipe."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tracker import progress

ROOT = Path(__file__).resolve().parents[2]
DEMO_UNITS = ROOT / "config" / "data" / "units-fujian.yaml"


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_lines_pass_unchanged_and_nothing_is_shown_off_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = iter([b"a\n", b"\xff\n", b"c"])
    # off a terminal the iterator itself comes back: no per-line cost at all
    assert progress.track_lines(lines, label="ingest", total_bytes=7) is lines
    assert list(progress.track_lines([b"x\n"], label="ingest", total_bytes=None)) == [b"x\n"]
    with progress.progress("replay", total=3) as advance:
        advance(2)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("total_bytes", [None, 9])  # stdin (size unknown), a regular file
def test_lines_pass_unchanged_and_progress_shows_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], total_bytes: int | None
) -> None:
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    lines = [b"a\n", b"\xff\n", b"ccc\n", b"d"]
    assert list(progress.track_lines(lines, label="ingest", total_bytes=total_bytes)) == lines
    shown = err.getvalue()
    assert "ingest" in shown and "4 lines" in shown
    assert capsys.readouterr().out == ""


def test_a_stopped_reader_ends_the_display(monkeypatch: pytest.MonkeyPatch) -> None:
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    tracked = progress.track_lines(iter([b"a\n"] * 10), label="ingest", total_bytes=20)
    assert next(tracked) == b"a\n"
    tracked.close()  # type: ignore[attr-defined]  # what a consumer's exception does
    assert "ingest" in err.getvalue()


def test_progress_counts_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    with progress.progress("replaying", total=None) as advance:
        advance(1200)
        advance(34)
    assert "replaying" in err.getvalue() and "1,234" in err.getvalue()


def _ingest_command(tmp_path: Path) -> list[str]:
    events = tmp_path / "events.jsonl"
    at = "2018-03-0{d}T09:00:00+08:00"
    events.write_text(
        "\n".join(
            json.dumps({"event_id": f"e{i}", "type": "mlps.finding", "unit": "fj.gat",
                        "system": f"s{i}", "at": at.format(d=1 + i % 9)})
            for i in range(2000)
        ) + "\n{broken\n",
        encoding="utf-8",
    )  # fmt: skip
    return [sys.executable, "-m", "tracker", "ingest", str(events), "--units", str(DEMO_UNITS),
            "--store", "memory://", "--json"]  # fmt: skip


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    return {**env, "TERM": "xterm-256color", "COLUMNS": "100"}


def _run_with_stderr_on_a_terminal(command: list[str]) -> tuple[bytes, bytes, int]:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL,
            env=_env(), cwd=ROOT,
        )  # fmt: skip
    finally:
        os.close(follower)
    shown = bytearray()

    def drain() -> None:  # the terminal's buffer is small: read it while the child writes
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed its end of the terminal
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    assert proc.stdout is not None
    out = proc.stdout.read()
    code = proc.wait(timeout=600)
    reader.join(timeout=30)
    os.close(leader)
    return out, bytes(shown), code


def test_ingest_shows_progress_on_a_terminal_and_none_in_a_pipe(tmp_path: Path) -> None:
    command = _ingest_command(tmp_path)
    out_tty, err_tty, code_tty = _run_with_stderr_on_a_terminal(command)
    piped = subprocess.run(command, capture_output=True, env=_env(), cwd=ROOT, timeout=120)
    assert (code_tty, piped.returncode) == (0, 0), piped.stderr
    assert b"ingest" in err_tty and b"lines" in err_tty, err_tty
    assert piped.stderr == b""
    # stdout is the same, and only the summary line, whatever stderr is
    assert out_tty == piped.stdout
    assert (
        json.loads(piped.stdout)["accepted"] == 2000 and json.loads(piped.stdout)["rejected"] == 1
    )
