"""What `tracker serve` does with a request, whatever the backend (docs/access.md, "Posting").

A request's lines are judged in two stages:

1. **At the door, all or nothing**: every line is read, checked against the contract (JSON,
   schema, known unit, not more than 10 minutes ahead) and authorized. If any line fails, nothing
   of the request is applied and the answer lists every failing line with its reason (400, or
   403 when a line is not the principal's to post): the client fixes the request and sends it
   again. A refusal at the door is the sender's to fix and is not kept as a dead letter - the
   sender still has the lines, as with `tracker post`.
2. **Accepted, line by line, in order**: each line is accepted or a duplicate (its `event_id` is
   logged or accepted already: a replayed request changes nothing). The engine applies the
   accepted lines in that order; what it rejects (feedback for an unknown notice, ...) is a dead
   letter, as the contract says - in the answer too when the request waits for the engine's
   verdict (`wait_applied`, embedded backend).

The embedded backend (tracker/serve/embedded.py) appends the accepted lines to its intake journal
(tracker/serve/journal.py) and answers once they are on disk; its applier applies the journal in
order into the store, in groups, each request as if it came alone, so nothing is lost or doubled.
The Kafka backend (tracker/serve/kafka_backend.py) produces the lines to the events topic.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from schemas.envelope import Envelope
from schemas.events import Event
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import StoreReader
from streams.post_lines import Validator
from tracker.principals import Principal
from tracker.serve.authz import PostedByOf, post_check

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

    def submit(
        self, raws: Sequence[str], principal: Principal, *, wait_applied: bool = False
    ) -> SubmitResult:
        """`wait_applied`: answer with the engine's verdict on each line (rejected lines
        too) where the backend can: the embedded one waits for its applier then."""
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

        may_post = post_check(principal, self.registry, poster)
        for checked in door.passed:
            why = may_post(checked.event)
            if why is not None:
                door.refused.append(
                    LineResult(checked.line, "forbidden", checked.event.event_id, why)
                )
            earlier.add(checked.event.event_id)
        door.refused.sort(key=lambda r: r.line)

    def remember(self, event_id: str, principal: Principal | str) -> None:
        """`principal`: the principal, or its id."""
        poster = principal if isinstance(principal, str) else principal.id
        with self._recent_lock:
            self._recent[event_id] = poster
            self._recent.move_to_end(event_id)
            while len(self._recent) > RECENT_EVENTS:
                self._recent.popitem(last=False)

    def recent_poster(self, event_id: str) -> str | None:
        """Who posted the event, when this process accepted it lately."""
        with self._recent_lock:
            return self._recent.get(event_id)

    def envelope(self, principal: Principal) -> Envelope:
        return Envelope(posted_by=principal.id, received_at=self.clock())

    def _busy(self) -> ServiceBusy:
        return ServiceBusy(
            f"the tracker is busy: not taken within {self.lock_timeout_s:g}s; send it again"
        )

    @contextmanager
    def _held(self, lock: threading.Lock) -> Iterator[None]:
        if not lock.acquire(timeout=self.lock_timeout_s):
            raise self._busy()
        try:
            yield
        finally:
            lock.release()


def logged_poster(store: StoreReader, event_id: str) -> str | None:
    """Who posted a logged event ("" when it came without an envelope, or was logged before
    envelopes were), or None when it is not logged."""
    found = store.posters([event_id]).get(event_id)
    return None if found is None else found[0]


def __getattr__(name: str) -> Any:
    # `EmbeddedService` lives in tracker/serve/embedded.py (beside kafka_backend.py); it is still
    # importable from here, as it was
    if name == "EmbeddedService":
        from tracker.serve.embedded import EmbeddedService

        return EmbeddedService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
