"""The limits of `tracker serve` (issue 10, item 5) and the per-principal rate limiter.

Every refusal is an HTTP error before anything of the request is applied: 413 for a body or an
event count over the limit, 429 (with Retry-After) for a principal over its rate, 408 for a body
that does not arrive within the request timeout, 503 (with Retry-After) for a request that waits
longer than the timeout for the store.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_events: int = 10_000  # non-blank lines (JSONL) or items (JSON array) per request
    rate_per_s: float = 50.0  # requests per second per principal, sustained
    burst: int = 100  # requests a principal may make at once, after a quiet time
    timeout_s: float = 30.0  # to receive a body, and to wait for the store or the broker

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.max_events < 1 or self.burst < 1:
            raise ValueError("limits: body size, events and burst must be at least 1")
        if not (self.rate_per_s > 0 and self.timeout_s > 0):
            raise ValueError("limits: rate and timeout must be more than 0")


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """A token bucket per principal: `burst` tokens, refilled at `rate_per_s`; a request takes
    one. Buckets of principals quiet long enough to be full again are dropped (bounded memory)."""

    rate_per_s: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> float | None:
        """None when the request may go ahead, else the seconds to wait (for Retry-After)."""
        now = self.clock()
        with self._lock:
            if len(self._buckets) > 10_000:
                full_after = self.burst / self.rate_per_s
                self._buckets = {k: b for k, b in self._buckets.items() if now - b.at < full_after}
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate_per_s)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return None
            return (1 - bucket.tokens) / self.rate_per_s


def retry_after(seconds: float) -> str:
    """Retry-After takes whole seconds; never 0 (that would invite an immediate retry)."""
    return str(max(1, math.ceil(seconds)))
