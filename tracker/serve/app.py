"""The `tracker serve` web app: the API (tracker/serve/api.py) and, when present, the pages."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from schemas.events import EVENT_ADAPTER
from tracker.principals import PrincipalStore
from tracker.serve.limits import Limits, RateLimiter
from tracker.serve.service import Service

DESCRIPTION = """\
Trusted intake and reads of the deduction tracker (issue 10; docs/access.md).

Every request carries a token from `tracker principals add`, as `Authorization: Bearer <token>`.
`POST /v1/events` takes one event (`application/json`), an array of events (`application/json`)
or JSONL (`application/x-ndjson`): first every line is checked and authorized, all or nothing
(400 / 403 list each failing line); then each is applied in order, as accepted, a duplicate of a
logged `event_id` (a replayed request changes nothing) or rejected by the engine (a dead letter).
Reads answer what `tracker status|ledger|deadlines|rejects --json` print, scoped to the caller.
"""


DOCS_ASSETS = "/docs/assets"


def create_app(service: Service, principals: PrincipalStore, limits: Limits) -> FastAPI:
    from tracker.serve.api import router

    # FastAPI's /docs page, its Swagger UI script, style and icon served from here (under
    # DOCS_ASSETS) rather than a CDN: a province's intranet reaches none (docs/access.md)
    app = FastAPIOffline(
        title="Deduction tracker",
        version="1",
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        static_url=DOCS_ASSETS,
    )
    app.state.service = service
    app.state.principals = principals
    app.state.limits = limits
    app.state.limiter = RateLimiter(limits.rate_per_s, limits.burst)
    app.include_router(router)
    # The web pages (helper "pages") live in tracker/serve/pages.py with a `router` of their own.
    if importlib.util.find_spec("tracker.serve.pages") is not None:
        app.include_router(importlib.import_module("tracker.serve.pages").router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the event contract's JSON Schema as the request body of
    `POST /v1/events` (the route reads the raw body itself, so FastAPI cannot see it)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    event = EVENT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(event.pop("$defs", {}))
    components["Event"] = event
    components["EventBody"] = {
        "oneOf": [
            {"$ref": "#/components/schemas/Event"},
            {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
        ]
    }
    app.openapi_schema = schema
    return schema
