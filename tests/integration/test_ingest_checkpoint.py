"""`tracker ingest` through the CLI on chDB with checkpoints (issue 12 item 4; docs/ingest.md):
a run ends with one, the next starts from it silently, and one that does not verify is said in
one line on stderr, the run replaying the whole log and ending as it would have."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.test_cli import files, tracker  # noqa: F401 (a fixture)

# Read and spoilt in a fresh process, as tests/integration/store_dump.py reads a CLI's store:
# chDB holds one directory per process, and this test's process may hold another test's.
_SEQ = """
import sys
from sinks.clickhouse import ClickHouseStore
sink = ClickHouseStore(sys.argv[1])
found = sink.load_checkpoint(0)
print("none" if found is None else found.through_seq)
sink.close()
"""
_SPOIL = """
import sys
from sinks.clickhouse import ClickHouseStore
sink = ClickHouseStore(sys.argv[1])
sink.client.command(
    "ALTER TABLE tracker.checkpoints UPDATE signature = 'AAAA' WHERE 1 SETTINGS mutations_sync = 1"
)
sink.close()
"""


def _in_a_fresh_process(script: str, data: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, f"chdb://{data / 'chdb'}"],  # the CLI released it
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _checkpoint_seq(data: Path) -> int | None:
    found = _in_a_fresh_process(_SEQ, data)
    return None if found == "none" else int(found)


def _spoil_signature(data: Path) -> None:
    _in_a_fresh_process(_SPOIL, data)


def test_a_run_resumes_from_the_last_runs_checkpoint_and_refuses_a_spoilt_one(
    tmp_path: Path,
    files: tuple[Path, Path],  # noqa: F811
) -> None:
    units, stream = files
    data = tmp_path / "d"
    first = tracker("ingest", "--units", str(units), str(stream), data=data)
    assert first.stderr == ""
    seq = _checkpoint_seq(data)
    assert seq is not None and seq > 0
    status = tracker("status", "--json", data=data).stdout

    again = tracker("ingest", "--units", str(units), str(stream), data=data)
    assert again.stderr == ""  # resumed: nothing to say
    assert _checkpoint_seq(data) == seq  # nothing new logged, the checkpoint stands

    _spoil_signature(data)
    spoilt = tracker("ingest", "--units", str(units), str(stream), data=data)
    lines = spoilt.stderr.strip().splitlines()
    assert len(lines) == 1, spoilt.stderr
    assert "not signed with this writer's key" in lines[0]
    assert "replaying the whole event log" in lines[0]
    assert tracker("status", "--json", data=data).stdout == status
    # the run wrote a good one again
    assert tracker("ingest", "--units", str(units), str(stream), data=data).stderr == ""
