"""A body posted to `POST /v1/events` (tracker/serve/api.py): its media type, its bytes within
the limits, and its lines, each refusal a `BodyError` carrying the HTTP status.

Apart from the routes because the route reads the raw body itself (FastAPI parses none of it):
to refuse an oversized or slow body before it is all read, and to number a JSONL body's lines as
`tracker ingest` numbers a file's, so that every refusal can name its line.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import Request

from tracker.serve.limits import Limits

JSON_TYPES = frozenset({"application/json"})
# No `text/plain`: it is a type another web site may send from the browser of a clerk who is
# signed in to the pages (the `tracker_token` cookie) without asking first (a CORS "simple"
# request). Each type below makes the browser ask, and this server answers no cross-origin
# request, so a cookie can only post from the pages themselves.
JSONL_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
    }
)


class BodyError(Exception):
    """A body refused before any of it is applied: the HTTP status, and for a malformed body the
    line it fails at (the shape of the answer's `rejected`)."""

    def __init__(self, status: int, detail: str, lines: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.lines = status, detail, lines


def media_type(request: Request) -> str:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in JSON_TYPES or media in JSONL_TYPES:
        return media
    raise BodyError(
        415,
        f"content type {media or '(none)'!r}: send application/json (an event or an array of "
        "events) or application/x-ndjson (JSONL, one event per line)",
    )


async def read_body(request: Request, limits: Limits) -> bytes:
    """The body, refused with 413 as soon as it is over the limit (whatever Content-Length
    says) and with 408 when it does not arrive within the request timeout."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise BodyError(413, f"body of {declared} bytes: at most {limits.max_body_bytes}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(limits.timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise BodyError(413, f"body over {limits.max_body_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyError(408, f"the body did not arrive within {limits.timeout_s:g}s") from None
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def split_body(body: bytes, media: str) -> list[str]:
    """The lines of a body: JSONL line by line (numbered from 1, blank lines kept so that
    numbers match); a JSON document's event or events, one per line (an array's position)."""
    if media in JSONL_TYPES:
        # Lines end at LF, CR LF or CR, as `tracker ingest` reads a file (bytes.splitlines; a
        # str would also split inside JSON strings, at U+2028 or U+0085). A line that is not
        # UTF-8 keeps its bytes as surrogates; the service refuses it.
        body = body.removeprefix(b"\xef\xbb\xbf")
        return [line.decode("utf-8", "surrogateescape") for line in body.splitlines()]
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
        doc = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise BodyError(
            400, "malformed body", [_line(1, f"not UTF-8 (byte {exc.start + 1})")]
        ) from None
    except json.JSONDecodeError as exc:
        raise BodyError(
            400, "malformed JSON", [_line(exc.lineno, f"malformed JSON: {exc}")]
        ) from None
    except (ValueError, RecursionError) as exc:
        raise BodyError(400, "malformed JSON", [_line(1, f"malformed JSON: {exc}")]) from None
    items = doc if isinstance(doc, list) else [doc]
    return [json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in items]


def _line(number: int, reason: str) -> dict[str, Any]:
    return {"line": number, "event_id": None, "reason": reason}
