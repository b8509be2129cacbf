"""The HTTP API of `tracker serve` (docs/access.md): post events, read what the caller may read.

Reads answer the shapes of the CLI's `--json` outputs (`tracker status|ledger|deadlines|rejects
--json`), as JSON arrays, scoped to the caller: asking for a unit outside the caller's scope is
403; asking for none gives every unit of the scope.

A posted body is read and split into lines in tracker/serve/bodies.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from schemas.envelope import UNKNOWN_POSTER
from schemas.ledger import DeadLetter, DeadlineState, LedgerEntry, LoggedEvent, UnitYearStatus
from sinks.base import HistoryMissingError, StoreError, StoreReader
from sinks.views import status_rows
from tracker.principals import Principal
from tracker.serve import authz
from tracker.serve.bodies import BodyError, media_type, read_body, split_body
from tracker.serve.deps import CurrentPrincipal, CurrentService, get_limits
from tracker.serve.limits import retry_after
from tracker.serve.service import Service, ServiceBusy, ServiceUnavailable

router = APIRouter()

# A request of at most this many lines is checked on the event loop when the backend can take it
# from there (the Kafka one: `submit_async`): its checks cost less than handing it to a worker
# thread (~25 us a line); a bigger one is checked on a thread, as before, so that the loop goes
# on serving others meanwhile.
ON_THE_LOOP = 16


@router.post(
    "/v1/events",
    summary="Post events: one JSON event, a JSON array of events, or JSONL",
    response_model=None,
    responses={
        200: {"description": "every line applied: accepted, duplicate or rejected by the engine"},
        400: {"description": "a line is malformed or invalid: nothing applied"},
        401: {"description": "no valid token"},
        403: {"description": "a line is not the principal's to post: nothing applied"},
        408: {"description": "the body did not arrive within the request timeout"},
        413: {"description": "the body or its event count is over the limit: nothing applied"},
        415: {"description": "not application/json nor JSONL (application/x-ndjson)"},
        429: {"description": "over the principal's rate: nothing applied"},
        503: {"description": "the store or the broker failed part-way, or is busy"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/EventBody"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def post_events(
    request: Request,
    principal: CurrentPrincipal,
    service: CurrentService,
    wait: Annotated[Literal["accepted", "applied"], Query(description=WAIT)] = "accepted",
) -> JSONResponse:
    """Each line is first checked and authorized, all or nothing (400/403 list every failing
    line); then each is accepted or a duplicate of a logged or accepted `event_id` (a replayed
    request changes nothing). The engine's rejections are dead letters (`/v1/rejects`)."""
    limits = get_limits(request)
    try:
        media = media_type(request)
        raws = split_body(await read_body(request, limits), media)
        count = sum(1 for r in raws if r.strip())
        if count > limits.max_events:
            raise BodyError(413, f"{count} events: at most {limits.max_events} per request")
    except BodyError as exc:
        body: dict[str, Any] = {"detail": exc.detail}
        if exc.lines is not None:
            body.update(accepted=0, duplicates=0, rejected=exc.lines, backend=service.backend)
        return JSONResponse(body, status_code=exc.status)
    submit_async = getattr(service, "submit_async", None)
    with _service_errors():
        if submit_async is not None and count <= ON_THE_LOOP:
            result = await submit_async(raws, principal)
        else:
            result = await run_in_threadpool(
                service.submit, raws, principal, wait_applied=wait == "applied"
            )
    out = result.as_dict()
    if result.status_code != 200:
        out["detail"] = _refusal_words(result.status_code, principal)
    return JSONResponse(out, status_code=result.status_code)


WAIT = (
    "accepted (default): answer once the lines are durable (the embedded backend's journal, "
    "the broker); applied: the embedded backend answers once the engine applied them, with its "
    "rejections (`rejected`) in the answer"
)


def _refusal_words(status: int, principal: Principal) -> str:
    if status == 403:
        return f"nothing was applied: {authz.may_do(principal)}"
    if status == 400:
        return "nothing was applied: fix the lines listed in `rejected` and send them again"
    return "not every line was applied; send the request again (it is idempotent by event_id)"


@contextmanager
def _service_errors() -> Iterator[None]:
    try:
        yield
    except ServiceBusy as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": retry_after(1)}) from None
    except HistoryMissingError as exc:  # a store that cannot answer as of an instant, ever
        raise HTTPException(409, str(exc)) from None
    except (ServiceUnavailable, StoreError) as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": retry_after(5)}) from None


@contextmanager
def _reading(service: Service) -> Iterator[StoreReader]:
    with _service_errors():
        reader = service.reader()
        try:
            yield reader
        finally:
            reader.close()


def _scope(
    principal: Principal, endpoint: authz.Endpoint, service: Service, unit: str | None
) -> frozenset[str] | None:
    why = authz.may_read(principal, endpoint, service.registry, unit)
    if why is not None:
        raise HTTPException(403, why)
    return authz.units_in_scope(principal, service.registry)


Unit = Annotated[str | None, Query(description="one unit (default: every unit of your scope)")]
Year = Annotated[int | None, Query(ge=1970, le=2199, description="one assessment year")]
AsOf = Annotated[
    str | None,
    Query(
        description="what the tracker showed at this instant of event time, RFC 3339 with its "
        "offset, to the millisecond (as `--as-of`; docs/semantics.md, 'As of an instant')",
        examples=["2018-06-30T00:00:00+08:00"],
    ),
]


def _instant(text: str | None) -> datetime | None:
    """`as_of` as the instant; a 400 naming the parameter when it is not one."""
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, f"as_of: {text!r} is not an RFC 3339 time") from None
    if at.tzinfo is None:
        raise HTTPException(400, f"as_of: {text!r} has no offset (e.g. +08:00)")
    if at.microsecond % 1000:
        raise HTTPException(400, f"as_of: {text!r} is finer than a millisecond")
    return at


@router.get(
    "/v1/status",
    summary="Points per unit and year (as `tracker status --json`)",
    response_model=None,
    responses={200: {"model": list[UnitYearStatus]}},
)
def get_status(
    principal: CurrentPrincipal,
    service: CurrentService,
    unit: Unit = None,
    year: Year = None,
    as_of: AsOf = None,
) -> JSONResponse:
    at = _instant(as_of)
    scope = _scope(principal, "status", service, unit)
    with _reading(service) as reader:
        config = reader.load_config() or (service.registry, service.rulebooks)
        rows = status_rows(reader, config, unit=unit, year=year, as_of=at)
    return _json([r for r in rows if scope is None or r.unit in scope])


@router.get(
    "/v1/ledger",
    summary="Ledger entries, each with `posted_by` aligned with `event_ids` "
    "(as `tracker ledger --json`, one array)",
    response_model=None,
    responses={200: {"model": list[LedgerEntry]}},
)
def get_ledger(
    principal: CurrentPrincipal,
    service: CurrentService,
    unit: Unit = None,
    year: Year = None,
    as_of: AsOf = None,
) -> JSONResponse:
    at = _instant(as_of)
    scope = _scope(principal, "ledger", service, unit)
    with _reading(service) as reader:
        found = (
            reader.ledger(unit=unit, year=year)
            if at is None
            else reader.as_of(at).ledger(unit, year)
        )
        entries = [e for e in found if scope is None or e.unit in scope]
        posters = reader.posters([i for e in entries for i in e.event_ids])
    # as `tracker ledger --json`: who posted each event, aligned with `event_ids` ("": unknown)
    return JSONResponse(
        [
            {
                **e.model_dump(mode="json"),
                "posted_by": [posters.get(i, (UNKNOWN_POSTER,))[0] for i in e.event_ids],
            }
            for e in entries
        ]
    )


@router.get(
    "/v1/deadlines",
    summary="Open and overdue deadlines (as `tracker deadlines --json`)",
    response_model=None,
    responses={200: {"model": list[DeadlineState]}},
)
def get_deadlines(
    principal: CurrentPrincipal,
    service: CurrentService,
    unit: Unit = None,
    year: Year = None,
    all: Annotated[bool, Query(description="also met, late and withdrawn ones")] = False,
    as_of: AsOf = None,
) -> JSONResponse:
    at = _instant(as_of)
    scope = _scope(principal, "deadlines", service, unit)
    with _reading(service) as reader:
        if at is None:
            states = reader.deadlines(unit=unit, year=year)
        else:
            states = reader.as_of(at).deadlines(unit, year)
    states = [d for d in states if scope is None or d.unit in scope]
    if not all:
        states = [d for d in states if d.status in ("open", "overdue")]
    states.sort(key=lambda d: (d.due, d.unit, d.ref))
    return _json(states)


@router.get(
    "/v1/rejects",
    summary="Dead letters, newest first (as `tracker rejects --json`): auditors and centres",
    response_model=None,
    responses={200: {"model": list[DeadLetter]}},
)
def get_rejects(
    principal: CurrentPrincipal,
    service: CurrentService,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> JSONResponse:
    """A centre with a subtree scope sees the dead letters whose raw text names a unit of its
    scope: a dead letter has no unit of its own, and one that cannot be read is shown only to
    the province's centre and the auditors."""
    scope = _scope(principal, "rejects", service, None)
    with _reading(service) as reader:
        letters = reader.dead_letters(limit=limit if scope is None else min(limit * 20, 20_000))
    if scope is not None:
        letters = [d for d in letters if _named_unit(d.raw) in scope][:limit]
    return _json(letters)


@router.get(
    "/v1/events",
    summary="The raw event log of one partition, in order: auditors and centres",
    response_model=None,
    responses={200: {"description": '{"events": [LoggedEvent...], "next_after": seq or null}'}},
)
def get_events(
    principal: CurrentPrincipal,
    service: CurrentService,
    partition: Annotated[int, Query(ge=0, le=65535)] = 0,
    after: Annotated[int, Query(ge=0, description="the seq to continue after")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> JSONResponse:
    """Page on with `after=<next_after>` until `next_after` is null. A centre with a subtree
    scope gets the events of its units and the clock ticks."""
    scope = _scope(principal, "events", service, None)
    with _reading(service) as reader:
        page_of = getattr(reader, "logged_events_after", None)
        if page_of is None:
            raise HTTPException(
                501, "the event log cannot be read through a worker: serve a store it can open"
            )
        page: list[LoggedEvent] = page_of(partition, after, limit)
    events = [e for e in page if scope is None or e.unit == "" or e.unit in scope]
    next_after = page[-1].seq if len(page) == limit else None
    return JSONResponse(
        {"events": [e.model_dump(mode="json") for e in events], "next_after": next_after}
    )


@router.get("/v1/me", summary="Who the token belongs to, and what it may do")
def get_me(principal: CurrentPrincipal, service: CurrentService) -> dict[str, Any]:
    units = authz.units_in_scope(principal, service.registry)
    return {
        "id": principal.id,
        "role": principal.role,
        "scope": principal.scope_text,
        "name": principal.name,
        "jurisdiction": principal.jurisdiction,
        "may": authz.may_do(principal),
        "posts": sorted(authz.POSTS[principal.role]),
        "reads": sorted(authz.READS[principal.role]),
        "units": None if units is None else sorted(units),
    }


@router.get("/healthz", summary="Liveness: no token needed", include_in_schema=True)
def healthz(service: CurrentService) -> dict[str, str]:
    return {"status": "ok", "backend": service.backend}


def _named_unit(raw: str) -> str | None:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    unit = doc.get("unit") if isinstance(doc, dict) else None
    return unit if isinstance(unit, str) else None


def _json(models: list[Any]) -> JSONResponse:
    return JSONResponse([m.model_dump(mode="json") for m in models])
