"""Sessions of the web pages: the token cookie, CSRF tokens, rendering with safe headers.

Sign-in is the principal's API token, pasted once and kept in an HttpOnly, SameSite=Strict cookie
(`tracker_token`, the cookie the API's `current_principal` also reads). Every POST carries a CSRF
token: an HMAC of the session's token under a per-process key (a double-submit cookie on the login
form, which has no session yet). Templates autoescape everything they print.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from schemas.registry import Unit
from tracker.principals import Principal
from tracker.serve import authz
from tracker.serve.limits import retry_after
from tracker.serve.service import Service

COOKIE = "tracker_token"
LOGIN_COOKIE = "tracker_login_csrf"
HERE = Path(__file__).parent
_CSRF_KEY = secrets.token_bytes(32)  # per process: a restart only invalidates forms already open
_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

templates = Jinja2Templates(directory=str(HERE / "templates"))

ROLE_NAMES = {
    "centre": "安全中心",
    "unit": "单位",
    "auditor": "审计",
    "ticker": "时钟服务",
    "worker": "处理服务",
}


def csrf_for(token: str) -> str:
    return hmac.new(_CSRF_KEY, b"csrf\0" + token.encode(), hashlib.sha256).hexdigest()


def signed_in(request: Request) -> tuple[Principal, str] | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    principal = request.app.state.principals.authenticate(token)
    return None if principal is None else (principal, token)


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("principal", None)
    context.setdefault("csrf", "")
    context.setdefault("title", "")
    context["path_for"] = lambda route: str(request.app.url_path_for(route))
    response = templates.TemplateResponse(
        request, name, {"role_names": ROLE_NAMES, **context}, status_code=status
    )
    response.headers["Content-Security-Policy"] = _POLICY
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def over_rate(request: Request, principal: Principal, token: str) -> Response | None:
    """The principal's rate limit, as the API applies it (a page's post is a post)."""
    wait = request.app.state.limiter.take(principal.id)
    if wait is None:
        return None
    response = render(
        request,
        "error.html",
        429,
        title="请求过于频繁",
        message=f"请求过于频繁，请 {retry_after(wait)} 秒后再试。",
        principal=principal,
        csrf=csrf_for(token),
    )
    response.headers["Retry-After"] = retry_after(wait)
    return response


def path_of(request: Request, route: str) -> str:
    # Paths, not absolute URLs: right behind a reverse proxy whatever Host it forwards.
    return str(request.app.url_path_for(route))


def to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(
        path_of(request, "login_form") + "?" + urlencode({"next": target}), status_code=303
    )


def refuse(request: Request, principal: Principal, csrf: str, message: str) -> Response:
    return render(
        request,
        "error.html",
        403,
        title="无权访问",
        message=message,
        principal=principal,
        csrf=csrf,
    )


def safe_next(value: str) -> str:
    # Only a path of this site: never another origin (`//host`, `/\host`, `https:`).
    if value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


def form_value(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def csrf_ok(form: Any, token: str) -> bool:
    return hmac.compare_digest(form_value(form, "csrf").encode(), csrf_for(token).encode())


EVENT_ID = re.compile(r"web-[0-9a-f]{24}")


def new_event_id() -> str:
    return f"web-{secrets.token_hex(12)}"


def units_of(service: Service, principal: Principal) -> list[Unit]:
    scope = authz.units_in_scope(principal, service.registry)
    return sorted(
        (u for u in service.registry.units if scope is None or u.id in scope), key=lambda u: u.id
    )


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=12 * 3600,
    )
