"""A client of `tracker serve`'s `POST /v1/events`: what `tracker post` uses (standard library only).

The events go in requests of at most `chunk_events` lines, as JSONL; a line's number in an answer is
mapped back to its line in the input (or its position in a JSON array). An answer of 429 or 503 is
waited out (its Retry-After) and the request sent again, within `timeout_s` in all: that is safe,
as the server applies a request idempotently by `event_id`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.post_lines import Line, raw_events

CHUNK_EVENTS = 5_000
RETRIED = (429, 503)


class ClientError(RuntimeError):
    """The server cannot be reached or refused the token; one line."""


@dataclass
class PostAnswer:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (input line, reason)
    not_sent: list[int] = field(default_factory=list)  # input lines not applied
    error: str | None = None  # why some lines were not applied

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": len(self.rejected),
            "not_sent": len(self.not_sent),
            "rejected_lines": [{"line": n, "reason": r} for n, r in self.rejected],
            "not_sent_lines": self.not_sent,
            "error": self.error,
        }


def post_events(
    url: str,
    token: str,
    data: bytes,
    *,
    timeout_s: float = 60.0,
    chunk_events: int = CHUNK_EVENTS,
    sleep: Callable[[float], None] = time.sleep,
) -> PostAnswer:
    """Post a file's events (JSONL, a JSON object or array: `streams.post_lines.raw_events`).

    A chunk refused for its content (400, 403: nothing of it applied) does not stop the others;
    any other failure does, and the lines not sent are listed."""
    lines = list(raw_events(data))
    answer = PostAnswer()
    answer.rejected = [(line.number, line.problem) for line in lines if line.problem]
    sendable = [line for line in lines if not line.problem]
    deadline = time.monotonic() + timeout_s
    stopped = False
    for start in range(0, len(sendable), chunk_events):
        chunk = sendable[start : start + chunk_events]
        if stopped:
            answer.not_sent += [line.number for line in chunk]
            continue
        stopped = not _post_chunk(url.rstrip("/"), token, chunk, deadline, sleep, answer)
    answer.rejected.sort()
    return answer


def _post_chunk(
    url: str,
    token: str,
    chunk: list[Line],
    deadline: float,
    sleep: Callable[[float], None],
    answer: PostAnswer,
) -> bool:
    """Post one chunk and add its answer; False when the next chunks should not be sent."""
    body = "".join(line.raw + "\n" for line in chunk).encode("utf-8")
    while True:
        status, reply, retry_after = _send(url, token, body, deadline)
        if status in RETRIED and time.monotonic() + retry_after < deadline:
            sleep(retry_after)
            continue
        break
    if status == 401:
        raise ClientError(f"{url}: {reply.get('detail', 'the token was refused')}")
    numbers = [line.number for line in chunk]

    def at(position: Any) -> int:
        if isinstance(position, int) and 0 < position <= len(numbers):
            return numbers[position - 1]
        return 0

    answer.accepted += int(reply.get("accepted", 0))
    answer.duplicates += int(reply.get("duplicates", 0))
    refused = [(at(r.get("line")), str(r.get("reason"))) for r in reply.get("rejected", [])]
    answer.rejected += refused
    if status == 200:
        return True
    why = str(reply.get("error") or reply.get("detail") or f"HTTP {status}")
    answer.error = answer.error or f"HTTP {status}: {why}"
    if status == 503 and isinstance(reply.get("not_sent"), list):
        answer.not_sent += [at(p) for p in reply["not_sent"]]  # the rest was applied
    else:  # nothing of the chunk was applied
        answer.not_sent += [n for n in numbers if n not in {r for r, _ in refused}]
    return status in (400, 403)


def _send(url: str, token: str, body: bytes, deadline: float) -> tuple[int, dict[str, Any], float]:
    request = urllib.request.Request(
        # the engine's verdict in the answer (the embedded backend; a broker's cannot say yet)
        f"{url}/v1/events?wait=applied",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
    )
    left = max(1.0, deadline - time.monotonic())
    try:
        with urllib.request.urlopen(request, timeout=left) as response:
            return response.status, _json(response.read()), 0.0
    except urllib.error.HTTPError as exc:
        retry = exc.headers.get("Retry-After", "1") if exc.headers else "1"
        wait = float(retry) if retry.isdigit() else 1.0
        return exc.code, _json(exc.read()), wait
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        raise ClientError(f"cannot reach tracker serve at {url}: {why}") from None


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {"detail": data[:200].decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"detail": str(value)[:200]}
