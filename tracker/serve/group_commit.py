"""Group commit: requests that arrive while a group is being written wait, and the next group
takes all of them, in arrival order, so that the store is written once per group rather than
once per request (docs/access.md, "How the embedded backend writes").

Whoever finds no group in progress leads: it takes the queue (up to `max_group` items, at least
one), applies it with `apply_group` and hands each waiting request its own outcome, then lets
the next leader take what queued meanwhile. A leader whose own request was not taken (the group
was full) goes on waiting like the others. `apply_group` answers every item, with a result or
with the exception that item is to raise; it is called by one thread at a time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class QueueTimeout(Exception):
    """The request was not taken into a group within the timeout; nothing of it was applied."""


@dataclass(eq=False)
class _Waiting(Generic[Item, Result]):
    item: Item
    done: bool = False
    result: Result | None = None
    error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        apply_group: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        *,
        size: Callable[[Item], int] = lambda item: 1,
        max_group: int = 20_000,
    ) -> None:
        self._apply_group = apply_group
        self._size = size
        self._max_group = max_group
        self._cond = threading.Condition()
        self._queue: deque[_Waiting[Item, Result]] = deque()
        self._leading = False
        self.groups = 0  # groups applied so far (for tests and the curious)

    def queued(self) -> int:
        """Requests waiting to be taken into a group."""
        with self._cond:
            return len(self._queue)

    def run(self, item: Item, timeout_s: float) -> Result:
        """Apply `item` in a group and return its result (or raise its exception); QueueTimeout
        when it was not taken into a group within `timeout_s`."""
        waiting: _Waiting[Item, Result] = _Waiting(item)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._queue.append(waiting)
            while True:
                while self._leading and not waiting.done:
                    taken = waiting not in self._queue
                    left = deadline - time.monotonic()
                    if not taken and left <= 0:
                        self._queue.remove(waiting)
                        raise QueueTimeout(f"not taken within {timeout_s:g}s")
                    # once taken, it is answered by the group's leader whatever the time
                    self._cond.wait(None if taken else left)
                if waiting.done:
                    break
                self._leading = True
                group = self._take()
                self._cond.release()
                try:
                    self._lead(group)
                finally:
                    self._cond.acquire()
                    self._leading = False
                    self.groups += 1
                    self._cond.notify_all()
        if waiting.error is not None:
            raise waiting.error
        return waiting.result  # type: ignore[return-value]

    def _take(self) -> list[_Waiting[Item, Result]]:
        group = [self._queue.popleft()]
        total = self._size(group[0].item)
        while self._queue and total + self._size(self._queue[0].item) <= self._max_group:
            total += self._size(self._queue[0].item)
            group.append(self._queue.popleft())
        return group

    def _lead(self, group: list[_Waiting[Item, Result]]) -> None:
        try:
            outcomes: Sequence[Result | BaseException] = self._apply_group([w.item for w in group])
            if len(outcomes) != len(group):
                raise RuntimeError(f"{len(outcomes)} outcomes for a group of {len(group)}")
        except BaseException as exc:  # a defect of apply_group: every member hears of it
            outcomes = [exc] * len(group)
        for waiting, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                waiting.error = outcome
            else:
                waiting.result = outcome
            waiting.done = True
