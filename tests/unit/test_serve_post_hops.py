"""A single post's hand-overs between threads (BENCHMARKS.md, `tracker serve` intake): each one
costs the event loop a wake-up of a worker thread and the GIL passed there and back (~0.1-0.5 ms
of the server's CPU a post, more than the post's own checks), so a post makes only the ones it
needs. The embedded backend hands its request to one thread (it waits on its journal's fsync);
FastAPI hands every plain-function dependency to a thread of its own, once per request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from sinks import MemoryStore
from tests.serve_kit import event, serve


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The callables handed to worker threads (starlette's `run_in_threadpool` and FastAPI's
    plain-function dependencies both go through anyio's `to_thread.run_sync`)."""
    handed: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        inner = getattr(func, "func", func)  # a functools.partial's function
        handed.append(getattr(inner, "__qualname__", repr(inner)))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    return handed


def test_a_post_to_the_embedded_backend_hands_only_its_submission_to_a_thread(
    tmp_path: Path, hops: list[str]
) -> None:
    served = serve(MemoryStore(), tmp_path)
    warm = served.post("centre", [event("vuln.notice", "fj.gat", "n-0", notice_id="V-0")])
    assert warm.status_code == 200  # the token's first use: its hash checked on a thread
    hops.clear()
    notice = event("vuln.notice", "fj.gat", "n-1", notice_id="V-1")
    answer = served.post("centre", [notice])
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    # not `get_service` (a dependency that only reads the app's state) on a thread of its own
    assert hops == ["EmbeddedService.submit"]


def test_a_read_hands_no_dependency_to_a_thread(tmp_path: Path, hops: list[str]) -> None:
    served = serve(MemoryStore(), tmp_path)
    assert served.get("auditor", "/v1/me").status_code == 200
    hops.clear()
    assert served.get("auditor", "/v1/me").status_code == 200
    # the route itself (a plain function) runs on a thread, its dependencies do not
    assert "get_service" not in hops and hops
