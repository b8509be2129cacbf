"""The group-commit queue of `tracker serve`'s embedded backend (tracker/serve/group_commit.py):
arrival order kept across groups, each caller gets its own outcome, a full group leaves the rest
to the next, a request not taken within its timeout leaves the queue, a defect reaches every
member of its group and no caller is left waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from tracker.serve.group_commit import GroupCommit, QueueTimeout


class Gate:
    """An `apply_group` that records its groups; the first group waits for the test."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.entered = threading.Event()
        self.go = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[str | BaseException]:
        self.groups.append(list(items))
        if len(self.groups) == 1:
            self.entered.set()
            assert self.go.wait(10)
        return [ValueError(f"bad {i}") if i < 0 else f"done {i}" for i in items]


def start(queue: GroupCommit[int, str], items: list[int], timeout_s: float = 10) -> list[object]:
    """Each item on its own thread, one after the other: each queued before the next starts."""
    out: list[object] = [None] * len(items)

    def run(i: int) -> None:
        try:
            out[i] = queue.run(items[i], timeout_s)
        except BaseException as exc:
            out[i] = exc

    threads = []
    for i in range(len(items)):
        threads.append(threading.Thread(target=run, args=(i,)))
        threads[-1].start()
        if i == 0:
            continue
        deadline = time.monotonic() + 10
        while queue.queued() < i and time.monotonic() < deadline:
            time.sleep(0.001)
    out.append(threads)
    return out


def join(out: list[object]) -> list[object]:
    threads = out.pop()
    assert isinstance(threads, list)
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    return out


def test_requests_behind_a_group_form_the_next_one_in_arrival_order() -> None:
    gate = Gate()
    queue: GroupCommit[int, str] = GroupCommit(gate)
    first = start(queue, [0])
    assert gate.entered.wait(10)
    rest = start(queue, [1, 2, -3, 4])
    gate.go.set()
    assert join(first) == ["done 0"]
    out = join(rest)
    assert gate.groups == [[0], [1, 2, -3, 4]]
    assert out[:2] == ["done 1", "done 2"] and out[3] == "done 4"
    assert isinstance(out[2], ValueError) and str(out[2]) == "bad -3"  # its own outcome only
    assert queue.groups == 2


def test_a_full_group_leaves_the_rest_to_the_next() -> None:
    gate = Gate()
    queue: GroupCommit[int, str] = GroupCommit(gate, size=lambda i: i, max_group=5)
    first = start(queue, [1])
    assert gate.entered.wait(10)
    rest = start(queue, [2, 3, 4, 1, 9])
    gate.go.set()
    join(first)
    assert join(rest) == ["done 2", "done 3", "done 4", "done 1", "done 9"]
    # rows: [2, 3] fits 5, [4, 1] fits, [9] is over alone and still goes (at least one)
    assert gate.groups == [[1], [2, 3], [4, 1], [9]]


def test_a_request_not_taken_in_time_leaves_the_queue() -> None:
    gate = Gate()
    queue: GroupCommit[int, str] = GroupCommit(gate)
    first = start(queue, [0])
    assert gate.entered.wait(10)
    late = start(queue, [7], timeout_s=0.05)
    time.sleep(0.2)
    gate.go.set()
    assert join(first) == ["done 0"]
    [out] = join(late)
    assert isinstance(out, QueueTimeout)
    assert queue.queued() == 0 and gate.groups == [[0]]  # never applied


def test_a_defect_of_the_group_reaches_every_member_and_the_queue_goes_on() -> None:
    calls: list[list[int]] = []

    def broken(items: Sequence[int]) -> list[str | BaseException]:
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("defect")
        return [f"ok {i}" for i in items]

    queue: GroupCommit[int, str] = GroupCommit(broken)
    with pytest.raises(RuntimeError, match="defect"):
        queue.run(1, 1)
    assert queue.run(2, 1) == "ok 2"
