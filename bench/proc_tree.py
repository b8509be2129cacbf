"""One process and its children measured as a whole: wall time, CPU (wait4's: its threads and
its reaped children), each process's own peak RSS (VmHWM sampled every 20 ms from /proc, summed:
wait4's ru_maxrss is the largest of the tree, not the sum), and the process's own CPU.

`tracker ingest` into an embedded store runs a writer process of its own (docs/ingest.md), so
a benchmark that read only wait4's ru_maxrss would report the larger of the two processes."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float  # user + system, the children included
    own_cpu_s: (
        float  # the process's own (sampled while it had children: the last 20 ms may be missed)
    )
    own_peak_mib: float
    children_peak_mib: float  # the sum of the children's own peaks
    stdout: str

    @property
    def peak_mib(self) -> float:
        """The peak of the tree: the process's and its children's peaks summed."""
        return self.own_peak_mib + self.children_peak_mib


def _peak_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a running process (its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as names:
                found += [int(n) for n in names.read().split()]
    except OSError:
        pass
    return found


def measure(
    argv: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    capture: bool = True,
) -> Measured:
    """Run `argv` to its end and measure it; a non-zero exit ends the benchmark."""
    peaks: dict[int, int] = {}
    cpu_of: dict[int, float] = {}
    out = ""
    t0 = time.perf_counter()
    stdout = subprocess.PIPE if capture else subprocess.DEVNULL
    with subprocess.Popen(argv, stdout=stdout, text=True, cwd=cwd, env=env) as proc:
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                for pid in [proc.pid, *_children(proc.pid)]:
                    peak, cpu = _peak_kib(pid), _cpu_s(pid)
                    if peak is not None:
                        peaks[pid] = max(peaks.get(pid, 0), peak)
                    if cpu is not None:
                        cpu_of[pid] = cpu
                done.wait(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        if proc.stdout is not None:
            out = proc.stdout.read()
        _, status, used = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{argv[:4]} exited {proc.returncode}")
    children = sum(v for pid, v in peaks.items() if pid != proc.pid) / 1024
    total = used.ru_utime + used.ru_stime
    if not children:  # no child: wait4's figures are exact
        return Measured(wall, total, total, used.ru_maxrss / 1024, 0.0, out)
    return Measured(
        wall, total, cpu_of.get(proc.pid, total), peaks.get(proc.pid, 0) / 1024, children, out
    )
