"""What `tracker serve` does with a request, whatever the backend (docs/access.md, "Posting").

A request's lines are judged in two stages:

1. **At the door, all or nothing**: every line is read, checked against the contract (JSON,
   schema, known unit, not more than 10 minutes ahead) and authorized. If any line fails, nothing
   of the request is applied and the answer lists every failing line with its reason (400, or
   403 when a line is not the principal's to post): the client fixes the request and sends it
   again. A refusal at the door is the sender's to fix and is not kept as a dead letter - the
   sender still has the lines, as with `tracker post`.
2. **Applied, line by line, in order**: each line is accepted, a duplicate (its `event_id` is
   logged already: a replayed request changes nothing), or rejected by the engine (feedback for an
   unknown notice, ...: a dead letter, as the contract says, with the line in the answer).

The embedded backend applies a request under one lock and writes it to the store before
answering, so concurrent requests are applied one after the other and nothing is lost or doubled;
the Kafka backend (tracker/serve/kafka_backend.py) produces the lines to the events topic.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from engine import WorkCalendar
from engine.step import Refusal
from schemas.envelope import Envelope
from schemas.events import Event
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import Store, StoreError, StoreReader
from streams.post import Validator
from tracker.pipeline import Tracker
from tracker.principals import Principal
from tracker.serve.authz import PostedByOf, may_post
from tracker.serve.signing import intake_signer

Clock = Callable[[], datetime]
LineStatus = Literal["accepted", "duplicate", "rejected", "invalid", "forbidden", "not_sent"]
BOM = "\ufeff"
RECENT_EVENTS = 100_000  # event ids (and posters) a serving process remembers it accepted


def wall_clock() -> datetime:
    return datetime.now(UTC)


class ServiceBusy(RuntimeError):
    """The backend could not take the request within the request timeout; nothing was applied."""


class ServiceUnavailable(RuntimeError):
    """The store (or the broker) cannot be used now; one line."""


@dataclass(frozen=True, slots=True)
class LineResult:
    line: int  # 1-based: the line of a JSONL body, the position in a JSON array
    status: LineStatus
    event_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class SubmitResult:
    """What became of every non-blank line of a request."""

    lines: tuple[LineResult, ...]
    backend: str
    error: str | None = None  # why applying stopped part-way (the store or the broker failed)

    def count(self, status: LineStatus) -> int:
        return sum(r.status == status for r in self.lines)

    @property
    def applied(self) -> bool:
        """Whether the request got past the door (stage 2 of the module doc)."""
        return not any(r.status in ("invalid", "forbidden") for r in self.lines)

    @property
    def status_code(self) -> int:
        if any(r.status == "forbidden" for r in self.lines):
            return 403
        if any(r.status == "invalid" for r in self.lines):
            return 400
        if self.error is not None or any(r.status == "not_sent" for r in self.lines):
            return 503
        return 200

    def as_dict(self) -> dict[str, Any]:
        refused = ("rejected", "invalid", "forbidden")
        out: dict[str, Any] = {
            "accepted": self.count("accepted"),
            "duplicates": self.count("duplicate"),
            "rejected": [
                {"line": r.line, "event_id": r.event_id, "reason": r.reason}
                for r in self.lines
                if r.status in refused
            ],
            "backend": self.backend,
        }
        not_sent = [r.line for r in self.lines if r.status == "not_sent"]
        if not_sent:
            out["not_sent"] = not_sent
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class _Checked:
    line: int
    raw: str
    event: Event


@dataclass
class Door:
    """Stage 1 of a request: the lines that passed, and the refusals."""

    passed: list[_Checked] = field(default_factory=list)
    refused: list[LineResult] = field(default_factory=list)


class Service:
    """The backend of `tracker serve`: `submit` posts, `reader` reads."""

    backend = "none"

    def __init__(
        self,
        registry: Registry,
        rulebooks: Mapping[str, Rulebook],
        *,
        clock: Clock = wall_clock,
        lock_timeout_s: float = 30.0,
    ) -> None:
        self.registry = registry
        self.rulebooks = dict(rulebooks)
        self.clock = clock
        self.lock_timeout_s = lock_timeout_s
        self._validator = Validator(registry, clock)
        # who posted the events this process accepted lately (event id -> principal id)
        self._recent: OrderedDict[str, str] = OrderedDict()
        self._recent_lock = threading.Lock()

    def submit(self, raws: Sequence[str], principal: Principal) -> SubmitResult:
        raise NotImplementedError

    def reader(self) -> StoreReader:
        """A reader of the store; close it after use."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # -- shared --------------------------------------------------------------------------------

    def read_lines(self, raws: Sequence[str]) -> Door:
        """Contract checks of every line (blank lines are skipped, as the contract says)."""
        door = Door()
        for number, raw in enumerate(raws, start=1):
            text = (raw.removeprefix(BOM) if number == 1 else raw).strip()
            if not text:
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                door.refused.append(
                    LineResult(number, "invalid", reason=f"not UTF-8 text (byte {exc.start + 1})")
                )
                continue
            event, reason = self._validator.check(text)
            if event is None:
                door.refused.append(LineResult(number, "invalid", reason=reason))
            else:
                door.passed.append(_Checked(number, text, event))
        return door

    def authorize(self, door: Door, principal: Principal, posted_by_of: PostedByOf) -> None:
        """Authorization of every line that passed the contract checks (stage 1). A retraction
        may name an event posted earlier in the same request: that one is the principal's."""
        earlier: set[str] = set()

        def poster(event_id: str) -> str | None:
            return principal.id if event_id in earlier else posted_by_of(event_id)

        for checked in door.passed:
            why = may_post(principal, checked.event, self.registry, poster)
            if why is not None:
                door.refused.append(
                    LineResult(checked.line, "forbidden", checked.event.event_id, why)
                )
            earlier.add(checked.event.event_id)
        door.refused.sort(key=lambda r: r.line)

    def remember(self, event_id: str, principal: Principal) -> None:
        with self._recent_lock:
            self._recent[event_id] = principal.id
            self._recent.move_to_end(event_id)
            while len(self._recent) > RECENT_EVENTS:
                self._recent.popitem(last=False)

    def recent_poster(self, event_id: str) -> str | None:
        """Who posted the event, when this process accepted it lately."""
        with self._recent_lock:
            return self._recent.get(event_id)

    def envelope(self, principal: Principal) -> Envelope:
        return Envelope(posted_by=principal.id, received_at=self.clock())

    @contextmanager
    def _held(self, lock: threading.Lock) -> Iterator[None]:
        if not lock.acquire(timeout=self.lock_timeout_s):
            raise ServiceBusy(
                f"the tracker is busy: not taken within {self.lock_timeout_s:g}s; send it again"
            )
        try:
            yield
        finally:
            lock.release()


class _RecordingTracker(Tracker):
    """The pipeline, remembering which lines the engine refused and why, so that a request can
    answer them (they become dead letters as in `tracker ingest`)."""

    refused: dict[str, str]  # origin -> reason
    # What the request's first look-up of the event log found: the ids logged before it. The
    # service classifies duplicates with it rather than ask the store a second time.
    logged_before: set[str] | None = None

    def _logged(self, ids: list[str]) -> set[str]:
        found = super()._logged(ids)
        if self.logged_before is None:
            self.logged_before = set(found)
        return found

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


class EmbeddedService(Service):
    """No broker: one pipeline into the store, in this process (`tracker serve` alone is a
    whole tracker). One lock serializes every use of the store: FastAPI runs requests on a
    thread pool, and the engine and the store client are not to be shared between threads."""

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
        self._tracker = self._new_tracker()

    def _new_tracker(self) -> _RecordingTracker:
        tracker = _RecordingTracker(
            self.store,
            self.registry,
            self.rulebooks,
            self._calendar,
            clock=self.clock,
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
        with self._held(self._lock):
            self.authorize(door, principal, self._posted_by_of)
            if door.refused:
                return SubmitResult(tuple(door.refused), self.backend)
            return self._apply(list(raws), door.passed, principal)

    def _apply(self, raws: list[str], lines: list[_Checked], principal: Principal) -> SubmitResult:
        """Every line through the pipeline in one chunk (one look-up of the log, one write),
        stored before the answer: an accepted line is never lost."""
        tracker = self._tracker
        origin = f"api:{principal.id}"
        ids = [item.event.event_id for item in lines]
        try:
            # A request of one chunk (the usual case: --max-events is below the pipeline's chunk)
            # is looked up in the log once, by the pipeline, which starts it with nothing
            # pending; a longer one is looked up here first, as its later chunks are looked up
            # after its first is applied.
            one_chunk = len(raws) <= tracker.batch_size
            logged_before = set() if one_chunk else self.store.known_events(sorted(set(ids)))
            tracker.refused, tracker.logged_before = {}, None
            # all the lines, blank ones too, so that the pipeline numbers them as the request does
            tracker.feed_lines(raws, origin, envelope=self.envelope(principal))
            if one_chunk:
                logged_before = tracker.logged_before or set()
        except StoreError as exc:
            # What reached the event log is kept (the restore derives its outputs again); the
            # rest was not accepted. Sending the request again is safe: logged lines are
            # duplicates then.
            self._tracker = self._new_tracker()
            logged = self._logged(ids)
            return SubmitResult(
                tuple(
                    LineResult(item.line, "not_sent", item.event.event_id)
                    for item in lines
                    if item.event.event_id not in logged
                ),
                self.backend,
                error=f"the store failed: {exc}; send the request again (it is idempotent)",
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
                self.remember(event_id, principal)
        return SubmitResult(tuple(results), self.backend)

    def _logged(self, ids: list[str]) -> set[str]:
        try:
            return self.store.known_events(sorted(set(ids)))
        except StoreError:
            return set()

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


def logged_poster(store: StoreReader, event_id: str) -> str | None:
    """Who posted a logged event ("" when it came without an envelope, or was logged before
    envelopes were), or None when it is not logged."""
    found = store.posters([event_id]).get(event_id)
    return None if found is None else found[0]


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
