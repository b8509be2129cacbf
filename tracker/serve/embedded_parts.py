"""Parts of the embedded backend (tracker/serve/embedded.py): the pipeline that remembers the
engine's refusals, the event ids of a journal entry, and the store's reading half under the
service's lock."""

from __future__ import annotations

import json
from typing import Any

from engine.step import Refusal
from sinks.base import Store
from tracker.pipeline import Tracker
from tracker.serve.journal import Entry


class RecordingTracker(Tracker):
    """The pipeline, remembering which lines the engine refused and why, so that a request
    that waits for its verdict can be answered (they become dead letters as in `tracker
    ingest`)."""

    refused: dict[str, str]  # origin -> reason

    def _reject(self, *args: Any, **kwargs: Any) -> None:
        origin, reason = origin_and_reason(args, kwargs)
        self.refused[origin] = reason
        super()._reject(*args, **kwargs)


def origin_and_reason(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
    """`Tracker._reject(refusal, origin)` (a `Refusal` with its reason) or `(raw, origin,
    reason)`: read either way, so that the pipeline's private step can change shape."""
    origin = kwargs.get("origin", args[1] if len(args) > 1 else "")
    reason = kwargs.get("reason")
    for arg in args:
        if isinstance(arg, Refusal):
            reason = arg.reason
    if reason is None and len(args) > 2 and isinstance(args[2], str):
        reason = args[2]
    return str(origin), str(reason or "rejected")


def event_ids(entry: Entry) -> list[str | None]:
    """The event id of each line: as the door read it, or (read back from the journal) the
    `event_id` field of the JSON, if it has one - a hint only; the pipeline reads the line."""
    if entry.parsed is not None:
        return [p.event.event_id for p in entry.parsed]
    ids: list[str | None] = []
    for _, raw in entry.lines:
        try:
            found = json.loads(raw).get("event_id")
        except (ValueError, AttributeError):
            found = None
        ids.append(found if isinstance(found, str) else None)
    return ids


class LockedReader:
    """The store's reading half, each call under the service's lock."""

    def __init__(self, store: Store, service: Any) -> None:
        self._store = store
        self._service = service

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if not callable(method):
            return method

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._service._held(self._service._lock):
                return method(*args, **kwargs)

        return locked

    def close(self) -> None:
        pass  # the service owns the store
