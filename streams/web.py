"""Read views on the worker's web port, so the CLI can answer while the worker holds the store
(an embedded chDB path can be opened by one process only).

    GET /tracker/status?unit=&year=     the contract's status objects
    GET /tracker/ledger?unit=&year=     ledger entries          (JSON list of LedgerEntry)
    GET /tracker/deadlines?unit=&year=  deadline states         (JSON list of DeadlineState)
    GET /tracker/rejects?limit=         dead letters            (JSON list of DeadLetter)
    POST /tracker/posters               body: a JSON list of event ids (at most 10,000);
                                        {event_id: [posted_by, received_at RFC 3339]} of those
                                        logged: who posted a ledger entry's events, and when
    GET /tracker/config                 {"registry": ..., "rulebooks": {...}} or null
    GET /tracker/totals                 [[unit, year, indicator, "points"], ...]
    GET /tracker/unit-years             [[unit, year], ...]
    GET /tracker/watermark              {"watermark": RFC 3339 or null}
    GET /tracker/progress               what this worker has processed and written
    GET /tracker/store                  {"store_id": ..., "dsn": canonical DSN, password masked}:
                                        which store this worker holds, checked by readers
    GET /tracker/health                 {"ok": true}

Every view but /tracker/health and /tracker/store answers only a request with
`Authorization: Bearer <token>`, the worker's token (sinks/worker_token.py); anything else is a
401 that says where the token is. /tracker/store is open: a reader that has no token for this
worker (it looks for the token of the store it wants) is then told the worker holds another
store, not merely refused; it shows no rows, only the store's id and masked DSN. The port binds
127.0.0.1 (streams/faust_app.py). Reads run on the store thread, after any write already queued
there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import faust
from faust.web import Request, Response, View
from pydantic import BaseModel

from engine.clock import iso
from schemas.points import format_points
from sinks.base import StoreReader
from sinks.views import status_rows
from sinks.worker_token import TOKEN_ENV, bearer_matches
from streams.sink_agent import StoreThread


class BadRequest(ValueError):
    pass


def _filters(query: Mapping[str, str]) -> tuple[str | None, int | None]:
    unit = query.get("unit") or None
    year_text = query.get("year") or None
    try:
        year = int(year_text) if year_text is not None else None
    except ValueError:
        raise BadRequest(f"year must be a number, not {year_text!r}") from None
    return unit, year


def _as_of(query: Mapping[str, str]) -> datetime | None:
    """The `as_of` instant of a read (RFC 3339 with offset; sinks/as_of.py), if any."""
    text = query.get("as_of") or None
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"as_of must be an RFC 3339 time, not {text!r}") from None
    if at.tzinfo is None:
        raise BadRequest(f"as_of must carry its offset: {text!r}")
    return at


def _models(rows: Sequence[BaseModel]) -> bytes:
    return b"[" + b",".join(r.model_dump_json().encode() for r in rows) + b"]"


def _status(
    store: StoreReader, unit: str | None, year: int | None, as_of: datetime | None = None
) -> bytes:
    config = store.load_config()
    if config is None:
        return b"[]"
    rows = status_rows(store, config, unit=unit, year=year, as_of=as_of)
    return json.dumps([r.model_dump(mode="json") for r in rows], ensure_ascii=False).encode()


def _config(store: StoreReader) -> bytes:
    config = store.load_config()
    if config is None:
        return b"null"
    registry, books = config
    parts = [f'"{k}":{b.model_dump_json()}' for k, b in sorted(books.items())]
    return f'{{"registry":{registry.model_dump_json()},"rulebooks":{{{",".join(parts)}}}}}'.encode()


def _totals(
    store: StoreReader,
    unit: str | None = None,
    year: int | None = None,
    as_of: datetime | None = None,
) -> bytes:
    found = store.totals() if as_of is None else store.as_of(as_of).totals(unit, year)
    rows = [[u, y, i, format_points(v)] for (u, y, i), v in sorted(found.items())]
    return json.dumps(rows, ensure_ascii=False).encode()


def _unit_years(
    store: StoreReader,
    unit: str | None = None,
    year: int | None = None,
    as_of: datetime | None = None,
) -> bytes:
    found = (
        store.event_unit_years()
        if as_of is None
        else store.as_of(as_of).event_unit_years(unit, year)
    )
    return json.dumps(sorted(found), ensure_ascii=False).encode()


def _watermark(store: StoreReader) -> bytes:
    mark = store.watermark()
    return json.dumps({"watermark": iso(mark) if mark is not None else None}).encode()


def _identity(store: StoreReader) -> bytes:
    identify = getattr(store, "identity", None)  # every store has it; a stand-in may not
    if identify is None:
        raise LookupError(f"{type(store).__name__} cannot say which store it is")
    return json.dumps(identify()).encode()


MAX_POSTER_IDS = 10_000  # ids per posters request: a bounded body and query


def _event_ids(body: bytes) -> list[str]:
    try:
        ids = json.loads(body)
    except ValueError:
        raise BadRequest("the body must be a JSON list of event ids") from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest("the body must be a JSON list of event ids")
    if len(ids) > MAX_POSTER_IDS:
        raise BadRequest(f"at most {MAX_POSTER_IDS} event ids per request, not {len(ids)}")
    return ids


def _posters(sink: StoreReader, ids: list[str]) -> bytes:
    found = sink.posters(ids)
    return json.dumps(
        {i: [poster, iso(received)] for i, (poster, received) in sorted(found.items())},
        ensure_ascii=False,
    ).encode()


def _query(name: str, request: Request) -> Callable[[StoreReader], bytes]:
    q = request.query
    at = _as_of(q)  # as of an instant of event time (sinks/as_of.py), where a read takes it
    if name == "status":
        unit, year = _filters(q)
        return lambda s: _status(s, unit, year, at)
    if name == "ledger":
        unit, year = _filters(q)
        if at is not None:
            return lambda s: _models(s.as_of(at).ledger(unit, year))
        return lambda s: _models(s.ledger(unit=unit, year=year))
    if name == "deadlines":
        unit, year = _filters(q)
        if at is not None:
            return lambda s: _models(s.as_of(at).deadlines(unit, year))
        return lambda s: _models(s.deadlines(unit=unit, year=year))
    if name == "rejects":
        try:
            limit = int(q["limit"]) if q.get("limit") else None
        except ValueError:
            raise BadRequest(f"limit must be a number, not {q['limit']!r}") from None
        return lambda s: _models(s.dead_letters(limit=limit))
    if name == "config":
        return _config
    if name == "totals":
        unit, year = _filters(q)
        return lambda s: _totals(s, unit, year, at)
    if name == "store":
        return _identity
    if name == "unit-years":
        unit, year = _filters(q)
        return lambda s: _unit_years(s, unit, year, at)
    return _watermark


OPEN = ("store",)  # answered without the token (the module's docstring)
READS = (
    "status",
    "ledger",
    "deadlines",
    "rejects",
    "config",
    "totals",
    "unit-years",
    "watermark",
    "store",
)


REFUSED = (
    f"this worker's views need its token (Authorization: Bearer): {TOKEN_ENV}, or the token "
    "file the worker wrote beside its embedded store or in its data directory"
)


def _refused(view: View, request: Request, token: str) -> Response | None:
    """The 401 for a request without the token; None when it carries it."""
    if bearer_matches(request.headers.get("Authorization"), token):
        return None
    return view.error(401, REFUSED, headers={"WWW-Authenticate": 'Bearer realm="tracker-worker"'})


def register(
    app: faust.App,
    store: StoreThread | None,
    progress: Callable[[], dict[str, Any]],
    token: str,
) -> None:
    """Add the views to the app, each but /tracker/health and /tracker/store requiring `token`;
    a worker without a sink answers reads with 503."""
    if not token:
        raise ValueError("the worker's views need a token")

    def reader(name: str) -> type[View]:
        async def handler(view: View, request: Request) -> Response:
            refused = None if name in OPEN else _refused(view, request, token)
            if refused is not None:
                return refused
            if store is None:
                return view.error(503, "this worker runs no sink (--role processor)")
            try:
                fn = _query(name, request)
                body = await store.call(fn)
            except BadRequest as exc:
                return view.error(400, str(exc))
            except Exception as exc:
                return view.error(503, (str(exc).splitlines() or [type(exc).__name__])[0])
            return view.bytes(body, content_type="application/json")

        handler.__name__ = f"tracker_{name.replace('-', '_')}"
        return View.from_handler(handler)

    for name in READS:
        app.page(f"/tracker/{name}")(reader(name))

    class Posters(View):
        async def post(self, request: Request) -> Response:
            refused = _refused(self, request, token)
            if refused is not None:
                return refused
            if store is None:
                return self.error(503, "this worker runs no sink (--role processor)")
            try:
                ids = _event_ids(await request.read())
                body = await store.call(lambda s: _posters(s, ids))
            except BadRequest as exc:
                return self.error(400, str(exc))
            except Exception as exc:
                return self.error(503, (str(exc).splitlines() or [type(exc).__name__])[0])
            return self.bytes(body, content_type="application/json")

    app.page("/tracker/posters")(Posters)

    async def progress_view(view: View, request: Request) -> Response:
        # behind the token too: it names the topics, partitions, offsets and store failures
        refused = _refused(view, request, token)
        if refused is not None:
            return refused
        return view.bytes(json.dumps(progress()).encode(), content_type="application/json")

    progress_view.__name__ = "tracker_progress"
    app.page("/tracker/progress")(View.from_handler(progress_view))

    async def health_view(view: View, request: Request) -> Response:
        return view.bytes(b'{"ok":true}', content_type="application/json")

    health_view.__name__ = "tracker_health"
    app.page("/tracker/health")(View.from_handler(health_view))
