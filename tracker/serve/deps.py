"""FastAPI dependencies: who is asking (`current_principal`) and the backend (`get_service`).

A token comes as `Authorization: Bearer <token>` (API clients) or in the `tracker_token` cookie
(the web pages); the header wins when both are there. A missing, malformed, unknown or revoked
token is 401 alike, so that an answer never tells which tokens exist. An authenticated request
takes one token of its principal's rate bucket: over the rate, 429 with Retry-After.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from tracker.principals import Principal, PrincipalStore
from tracker.serve.limits import Limits, RateLimiter, retry_after
from tracker.serve.service import Service

COOKIE = "tracker_token"

_bearer = HTTPBearer(auto_error=False, description="an API token from `tracker principals add`")
_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="the web pages' token")


async def get_service(request: Request) -> Service:
    # async, though it awaits nothing: FastAPI runs a plain-function dependency on a worker
    # thread, a hand-over there and back on every request for a look-up
    service: Service = request.app.state.service
    return service


def get_principals(request: Request) -> PrincipalStore:
    principals: PrincipalStore = request.app.state.principals
    return principals


def get_limits(request: Request) -> Limits:
    limits: Limits = request.app.state.limits
    return limits


async def current_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    token = bearer.credentials if bearer is not None else cookie
    if not token:
        raise HTTPException(
            401,
            "no token: send `Authorization: Bearer <token>` (see `tracker principals add`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # On the event loop when this process has verified the token before: a thread for every
    # request (FastAPI runs a plain function in one) cost each single post a hand-over there
    # and back; PBKDF2, the first time, runs in one.
    principals = get_principals(request)
    principal = principals.verified(token)
    if principal is None:
        principal = await run_in_threadpool(principals.authenticate, token)
    if principal is None:
        raise HTTPException(
            401,
            "the token is not valid: malformed, unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.take(principal.id)
    if wait is not None:
        raise HTTPException(
            429,
            f"{principal.id} is over its rate of {limiter.rate_per_s:g} requests/s "
            f"(burst {limiter.burst}): wait {retry_after(wait)}s",
            headers={"Retry-After": retry_after(wait)},
        )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentService = Annotated[Service, Depends(get_service)]
