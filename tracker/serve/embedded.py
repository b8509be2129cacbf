"""The embedded backend of `tracker serve`: one pipeline into the store, in this process
(module doc of tracker/serve/service.py for what a request becomes; docs/access.md, "How the
embedded backend writes", for why group commit is safe)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from engine import WorkCalendar
from engine.step import Parsed, Refusal
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import Store, StoreError, StoreReader
from tracker.pipeline import BATCH_SIZE, Tracker
from tracker.principals import Principal
from tracker.serve.authz import PostedByOf
from tracker.serve.group_commit import GroupCommit, QueueTimeout
from tracker.serve.service import (
    Clock,
    Door,
    LineResult,
    Service,
    ServiceUnavailable,
    SubmitResult,
    _Checked,
    logged_poster,
    wall_clock,
)
from tracker.serve.signing import intake_signer


class _RecordingTracker(Tracker):
    """The pipeline, remembering which lines the engine refused and why, so that a request can
    answer them (they become dead letters as in `tracker ingest`)."""

    refused: dict[str, str]  # origin -> reason

    def _reject(self, *args: Any, **kwargs: Any) -> None:
        origin, reason = _origin_and_reason(args, kwargs)
        self.refused[origin] = reason
        super()._reject(*args, **kwargs)


def _origin_and_reason(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
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


@dataclass(frozen=True)
class _Request:
    """A request past the contract checks, waiting for its group (stage 2 of the module doc)."""

    door: Door
    principal: Principal


class EmbeddedService(Service):
    """No broker: one pipeline into the store, in this process (`tracker serve` alone is a
    whole tracker). Requests are applied by group commit (tracker/serve/group_commit.py): those
    that arrive while the store is being written wait, and the next group applies them one after
    the other, in arrival order, exactly as if each came alone, then writes the group to the
    store once and answers each request. One lock serializes every use of the store: FastAPI
    runs requests on a thread pool, and the engine and the store client are not to be shared
    between threads."""

    backend = "embedded"

    def __init__(
        self,
        store: Store,
        registry: Registry,
        rulebooks: Mapping[str, Rulebook],
        calendar: WorkCalendar,
        *,
        clock: Clock = wall_clock,
        lock_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(registry, rulebooks, clock=clock, lock_timeout_s=lock_timeout_s)
        self.store = store
        self._calendar = calendar
        self._lock = threading.Lock()
        self._tracker: _RecordingTracker | None = self._new_tracker()
        self.groups = GroupCommit(
            self._apply_group, size=lambda r: len(r.door.passed), max_group=BATCH_SIZE
        )

    def _new_tracker(self) -> _RecordingTracker:
        # the one writer of its store (chDB lets one process hold it): the ids of the event log
        # are kept in memory, and no request asks the store for them
        tracker = _RecordingTracker(
            self.store,
            self.registry,
            self.rulebooks,
            self._calendar,
            clock=self.clock,
            remember_log=True,
            signer=intake_signer(),
        )
        tracker.refused = {}
        try:
            tracker.restore()
        except StoreError as exc:
            raise ServiceUnavailable(f"the store cannot be read: {exc}") from None
        return tracker

    def submit(self, raws: Sequence[str], principal: Principal) -> SubmitResult:
        door = self.read_lines(raws)
        try:
            return self.groups.run(_Request(door, principal), self.lock_timeout_s)
        except QueueTimeout:
            raise self._busy() from None

    def _apply_group(self, group: Sequence[_Request]) -> list[SubmitResult | BaseException]:
        """Each request authorized and applied in turn, as if it came alone, then the group
        stored in one write before any is answered: an accepted line is never lost."""
        with self._held(self._lock):
            try:
                tracker = self._tracker or self._rebuilt()
            except ServiceUnavailable as exc:
                return [exc] * len(group)
            outcomes: list[SubmitResult | BaseException] = []
            applied: set[int] = set()  # the requests given to the pipeline
            # who posted what the group accepted so far: a later retraction asks (authorize)
            posted: dict[str, str] = {}
            try:
                tracker.look_up(i.event.event_id for r in group for i in r.door.passed)
                for index, request in enumerate(group):
                    try:
                        self.authorize(request.door, request.principal, self._poster(posted))
                    except (ServiceUnavailable, StoreError) as exc:
                        outcomes.append(exc)
                        continue
                    if request.door.refused:
                        outcomes.append(SubmitResult(tuple(request.door.refused), self.backend))
                        continue
                    applied.add(index)
                    result = self._apply(tracker, request.door.passed, request.principal)
                    outcomes.append(result)
                    posted.update(
                        (r.event_id, request.principal.id)
                        for r in result.lines
                        if r.status == "accepted" and r.event_id is not None
                    )
                tracker.flush()
            except StoreError as exc:
                return self._failed(group, outcomes, applied, exc)
            except BaseException:
                self._tracker = None  # it may hold part of the group: rebuilt from the store
                raise
            for request, outcome in zip(group, outcomes, strict=True):
                if isinstance(outcome, SubmitResult):
                    for line in outcome.lines:
                        if line.status == "accepted" and line.event_id is not None:
                            self.remember(line.event_id, request.principal)
            return outcomes

    def _apply(
        self, tracker: _RecordingTracker, lines: list[_Checked], principal: Principal
    ) -> SubmitResult:
        """The lines of one request through the pipeline, as the door read them (not read a
        second time), classified as the pipeline applied them."""
        origin = f"api:{principal.id}"
        tracker.refused = {}
        logged_before = tracker.feed_read(
            [(f"{origin}:{item.line}", Parsed(item.event, item.raw)) for item in lines],
            origin,
            envelope=self.envelope(principal),
        )
        results, seen = [], set(logged_before)
        for item in lines:
            event_id = item.event.event_id
            reason = tracker.refused.get(f"{origin}:{item.line}")
            if reason is not None:
                results.append(LineResult(item.line, "rejected", event_id, reason))
            elif event_id in seen:
                results.append(LineResult(item.line, "duplicate", event_id))
            else:
                results.append(LineResult(item.line, "accepted", event_id))
                seen.add(event_id)
        return SubmitResult(tuple(results), self.backend)

    def _failed(
        self,
        group: Sequence[_Request],
        outcomes: list[SubmitResult | BaseException],
        applied: set[int],
        exc: StoreError,
    ) -> list[SubmitResult | BaseException]:
        """The store failed while the group was applied or written: every request of the group
        that got past the door hears of it, and none is answered `accepted`. What reached the
        event log is kept (the restore derives its outputs again); the rest was not accepted.
        Sending a request again is safe: its logged lines are duplicates then."""
        self._tracker = None
        with contextlib.suppress(ServiceUnavailable):
            self._rebuilt()  # else rebuilt by the next group
        error = f"the store failed: {exc}; send the request again (it is idempotent)"
        # the requests from the one that failed on were not (all) applied
        hit = [i for i in range(len(group)) if i in applied or i >= len(outcomes)]
        logged = self._logged([item.event.event_id for i in hit for item in group[i].door.passed])
        out: list[SubmitResult | BaseException] = []
        for index, request in enumerate(group):
            if index not in hit:
                out.append(outcomes[index])  # refused, or failed alone, before anything else
            elif index not in applied and request.door.refused:
                out.append(SubmitResult(tuple(request.door.refused), self.backend))
            else:
                unsent = tuple(
                    LineResult(item.line, "not_sent", item.event.event_id)
                    for item in request.door.passed
                    if item.event.event_id not in logged
                )
                out.append(SubmitResult(unsent, self.backend, error=error))
        return out

    def _rebuilt(self) -> _RecordingTracker:
        self._tracker = self._new_tracker()
        return self._tracker

    def _logged(self, ids: list[str]) -> set[str]:
        try:
            return self.store.known_events(sorted(set(ids)))
        except StoreError:
            return set()

    def _poster(self, posted: Mapping[str, str]) -> PostedByOf:
        def posted_by_of(event_id: str) -> str | None:
            found = posted.get(event_id)
            return found if found is not None else self._posted_by_of(event_id)

        return posted_by_of

    def _posted_by_of(self, event_id: str) -> str | None:
        recent = self.recent_poster(event_id)
        if recent is not None:
            return recent
        return logged_poster(self.store, event_id)

    def reader(self) -> StoreReader:
        return cast(StoreReader, _LockedReader(self.store, self))

    def close(self) -> None:
        with self._held(self._lock):
            self.store.close()


class _LockedReader:
    """The store's reading half, each call under the service's lock."""

    def __init__(self, store: Store, service: EmbeddedService) -> None:
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
