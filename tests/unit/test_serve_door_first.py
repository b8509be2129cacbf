"""The embedded backend's door goes first (issue 10): while a request is checked and journaled,
the applier waits between the events of the burst it applies, so a single post does not queue
behind it for the GIL. Counted (events the applier applied while a request was at the door),
not timed: the timing targets live in bench/serve_bench.py."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sinks import MemoryStore
from tests.serve_kit import event, serve
from tracker.serve.embedded import YIELD_MAX_S

HOLD_S = 0.5  # how long the test keeps a request at the door


def test_the_applier_waits_while_a_request_is_at_the_door(tmp_path: Path) -> None:
    served = serve(MemoryStore(), tmp_path)
    service = served.service
    service.linger_s = 0  # the burst is applied at once, not gathered
    applied: list[int] = []
    tracker = service._tracker
    assert tracker is not None
    pause = tracker.pause

    def counting_pause() -> None:
        applied.append(1)
        pause()

    tracker.pause = counting_pause
    # a request held at the door (its lines being read) while the applier has a burst to apply
    at_door, release = threading.Event(), threading.Event()
    read_lines = service.read_lines

    def held(raws: Any) -> Any:
        if len(raws) == 1:
            at_door.set()
            release.wait(10)
        return read_lines(raws)

    service.read_lines = held  # type: ignore[method-assign]
    burst = [event("vuln.notice", "fj.gat", f"b-{i}", notice_id=f"B-{i}") for i in range(3000)]
    single = threading.Thread(
        target=lambda: served.post("centre", [event("vuln.notice", "fj.gat", "s-1", notice_id="S")])
    )
    assert served.post("centre", burst).json()["accepted"] == 3000
    single.start()
    assert at_door.wait(10)
    before = len(applied)
    threading.Event().wait(HOLD_S)
    during = len(applied) - before
    release.set()
    single.join(30)
    service.settle(60)
    # Bounded: at most one event per YIELD_MAX_S (and the one under way) while it waits; the
    # applier went on at its own pace before (hundreds of events in HOLD_S).
    assert during <= HOLD_S / YIELD_MAX_S + 2, during
    assert len(list(service.store.logged_events())) == 3001  # nothing lost meanwhile
    service.close()
