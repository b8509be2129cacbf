"""Is a process alive, and wait until it is not: by pid, for the detached broker JVM.

The broker outlives the CLI that started it, so a later ``tracker kafka stop|status`` knows it
only by the pid in its pid file (``streams/broker.py``). These read that pid's state from the
kernel, reaping it first when it is our own child, and from ``/proc`` where there is one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def alive(pid: int) -> bool:
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
    stat = proc_file(pid, "stat")
    return stat is None or stat.rsplit(b")", 1)[-1].split()[0] != b"Z"


def proc_file(pid: int, name: str) -> bytes | None:
    """/proc/<pid>/<name>, or None where /proc is missing or the process just vanished."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return None


def wait_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True
