"""Runs `tracker` once per store write, killed (SIGKILL) by the write drill just before write 1,
then 2, ... until a run ends on its own, each on a store of its own, and prints what each run did:

    python -m tests.integration.kill_drill STORE_PREFIX '["ingest", ..., "--store", "{store}"]'

Each run is a child process forked from this one after it imported the CLI (about half a second
of CPU that a fresh interpreter spends on each of some thirty runs), and before it loaded chDB:
the child starts the engine itself, on its own store, as `tracker` started from a shell does, and
the kernel kills it as it would kill that one. `{store}` in the arguments is STORE_PREFIX-N.

The drill ends with the first run that was not killed (one that failed ends it too, at once).
One line per run on stdout: `kill-drill: {"at": N, "status": the child's wait status as
subprocess reports it (-9: killed), "stderr": what it wrote there}`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback

# What a run imports before its first store write, all but chDB (the engine starts threads
# when it loads: a fork must come before it).
import sinks.clickhouse
import tracker.cli
import tracker.cli_app
import tracker.ingest

_PRELOADED = (sinks.clickhouse, tracker.cli_app, tracker.ingest)

MARK = "kill-drill: "
MAX_WRITES = 1000  # a runaway bound: the drilled runs make a few dozen writes


def _run_killed_at(at: int, args: list[str]) -> tuple[int, str]:
    """Fork a child that runs `tracker args` with the drill armed at write `at`."""
    with tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's loop
            code = 70
            try:
                os.environ["TRACKER_WRITE_FAULT"] = f"kill:{at}"
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(err.fileno(), 2)
                code = tracker.cli.main(args)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # said on stderr, which the drill reports
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    return (-signal if signal else os.WEXITSTATUS(status)), text


def main(argv: list[str]) -> int:
    prefix, template = argv[0], json.loads(argv[1])
    if "chdb" in sys.modules or len(os.listdir("/proc/self/task")) != 1:
        print("kill_drill: chDB was loaded before the fork", file=sys.stderr)
        return 2
    for at in range(1, MAX_WRITES + 1):
        args = [a.replace("{store}", f"{prefix}-{at}") for a in template]
        status, text = _run_killed_at(at, args)
        print(MARK + json.dumps({"at": at, "status": status, "stderr": text}), flush=True)
        if status != -9:  # it ended on its own (0), or failed: either ends the drill
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
