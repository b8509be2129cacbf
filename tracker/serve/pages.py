"""The two web pages of `tracker serve`, in Chinese: the security centre's notice form and a unit's
open deadlines with a 修复反馈 button. Server-rendered Jinja2, no script.

Sign-in is the principal's API token, pasted once and kept in an HttpOnly, SameSite=Strict cookie
(`tracker_token`, the cookie the API's `current_principal` also reads). Every POST carries a CSRF
token: an HMAC of the session's token under a per-process key (a double-submit cookie on the login
form, which has no session yet). Templates autoescape everything they print.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from schemas.registry import Unit
from tracker.principals import Principal
from tracker.serve import authz
from tracker.serve.deadline_rows import FEEDBACK, deadline_row
from tracker.serve.limits import retry_after
from tracker.serve.notice_forms import (
    FORM_BY_TYPE,
    FORMS,
    SHANGHAI,
    build_event,
    now_local,
)
from tracker.serve.service import Service, ServiceBusy, ServiceUnavailable

COOKIE = "tracker_token"
LOGIN_COOKIE = "tracker_login_csrf"
_HERE = Path(__file__).parent
_CSRF_KEY = secrets.token_bytes(32)  # per process: a restart only invalidates forms already open
_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

templates = Jinja2Templates(directory=str(_HERE / "templates"))
router = APIRouter(include_in_schema=False)

ROLE_NAMES = {
    "centre": "安全中心",
    "unit": "单位",
    "auditor": "审计",
    "ticker": "时钟服务",
    "worker": "处理服务",
}
# -- session ----------------------------------------------------------------------------------


def _csrf_for(token: str) -> str:
    return hmac.new(_CSRF_KEY, b"csrf\0" + token.encode(), hashlib.sha256).hexdigest()


def _signed_in(request: Request) -> tuple[Principal, str] | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    principal = request.app.state.principals.authenticate(token)
    return None if principal is None else (principal, token)


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
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


def _over_rate(request: Request, principal: Principal, token: str) -> Response | None:
    """The principal's rate limit, as the API applies it (a page's post is a post)."""
    wait = request.app.state.limiter.take(principal.id)
    if wait is None:
        return None
    response = _render(
        request,
        "error.html",
        429,
        title="请求过于频繁",
        message=f"请求过于频繁，请 {retry_after(wait)} 秒后再试。",
        principal=principal,
        csrf=_csrf_for(token),
    )
    response.headers["Retry-After"] = retry_after(wait)
    return response


def _path(request: Request, route: str) -> str:
    # Paths, not absolute URLs: right behind a reverse proxy whatever Host it forwards.
    return str(request.app.url_path_for(route))


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(
        _path(request, "login_form") + "?" + urlencode({"next": target}), status_code=303
    )


def _refuse(request: Request, principal: Principal, csrf: str, message: str) -> Response:
    return _render(
        request,
        "error.html",
        403,
        title="无权访问",
        message=message,
        principal=principal,
        csrf=csrf,
    )


def _safe_next(value: str) -> str:
    # Only a path of this site: never another origin (`//host`, `/\host`, `https:`).
    if value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


def _form_value(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _csrf_ok(form: Any, token: str) -> bool:
    return hmac.compare_digest(_form_value(form, "csrf").encode(), _csrf_for(token).encode())


_EVENT_ID = re.compile(r"web-[0-9a-f]{24}")


def _new_event_id() -> str:
    return f"web-{secrets.token_hex(12)}"


def _units(service: Service, principal: Principal) -> list[Unit]:
    scope = authz.units_in_scope(principal, service.registry)
    return sorted(
        (u for u in service.registry.units if scope is None or u.id in scope), key=lambda u: u.id
    )


# -- login ------------------------------------------------------------------------------------


@router.get("/", name="home")
def home(request: Request) -> Response:
    signed = _signed_in(request)
    if signed is None:
        return _to_login(request)
    page = "notice_form" if signed[0].role == "centre" else "unit_page"
    return RedirectResponse(_path(request, page), status_code=303)


@router.get("/login", name="login_form")
def login_form(request: Request, next: str = "/") -> Response:
    nonce = secrets.token_urlsafe(24)
    response = _render(request, "login.html", title="登录", csrf=nonce, next=_safe_next(next))
    _set_cookie(request, response, LOGIN_COOKIE, nonce)
    return response


@router.post("/login", name="login")
async def login(request: Request) -> Response:
    form = await request.form()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    sent = _form_value(form, "csrf")
    next_path = _safe_next(_form_value(form, "next"))
    if not nonce or not hmac.compare_digest(sent.encode(), nonce.encode()):
        return _render(
            request,
            "login.html",
            403,
            title="登录",
            csrf=nonce,
            next=next_path,
            error="表单已过期，请重新登录。",
        )
    token = _form_value(form, "token").strip()
    principal = request.app.state.principals.authenticate(token) if token else None
    if principal is None:
        return _render(
            request,
            "login.html",
            401,
            title="登录",
            csrf=nonce,
            next=next_path,
            error="令牌无效或已被吊销，请向管理员确认。",
        )
    response = RedirectResponse(next_path, status_code=303)
    _set_cookie(request, response, COOKIE, token)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/logout", name="logout")
async def logout(request: Request) -> Response:
    signed = _signed_in(request)
    form = await request.form()
    if signed is not None and not _csrf_ok(form, signed[1]):
        return _refuse(request, signed[0], _csrf_for(signed[1]), "表单已过期，请刷新页面后重试。")
    response = RedirectResponse(_path(request, "login_form"), status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=12 * 3600,
    )


@router.get("/static/pages.css", name="pages_css")
def pages_css() -> Response:
    return FileResponse(_HERE / "static" / "pages.css", media_type="text/css")


# -- the security centre's notice form --------------------------------------------------------


@router.get("/notices/new", name="notice_form")
def notice_form(
    request: Request, type: str = "vuln.notice", posted: str = "", unit: str = "", dup: str = ""
) -> Response:
    signed = _signed_in(request)
    if signed is None:
        return _to_login(request)
    principal, token = signed
    if principal.role != "centre":
        return _refuse(request, principal, _csrf_for(token), _centre_only(principal))
    form = FORM_BY_TYPE.get(type, FORMS[0])
    now = datetime.now(UTC)
    return _notice_page(
        request,
        principal,
        token,
        form,
        {"at": now_local(now)},
        {},
        posted=_posted_banner(_service(request), form.name, posted, unit, dup == "1"),
    )


@router.post("/notices/new", name="notice_submit")
async def notice_submit(request: Request) -> Response:
    signed = _signed_in(request)
    if signed is None:
        return _to_login(request)
    principal, token = signed
    if principal.role != "centre":
        return _refuse(request, principal, _csrf_for(token), _centre_only(principal))
    data = await request.form()
    if not _csrf_ok(data, token):
        return _refuse(request, principal, _csrf_for(token), "表单已过期，请刷新页面后重试。")
    limited = _over_rate(request, principal, token)
    if limited is not None:
        return limited
    form = FORM_BY_TYPE.get(_form_value(data, "type"))
    if form is None:
        return _refuse(request, principal, _csrf_for(token), "未知的通报类型。")
    values = {name: _form_value(data, name) for name in ("unit", *(f.name for f in form.fields))}
    event_id = _form_value(data, "event_id") or _new_event_id()
    service = _service(request)
    line, errors = build_event(
        form, values, event_id=event_id, unit=values["unit"], now=datetime.now(UTC)
    )
    if values["unit"] and not errors.get("unit"):
        allowed = {u.id for u in _units(service, principal)}
        if values["unit"] not in allowed:
            errors["unit"] = "该单位不在您的管辖范围内。"
    if line is None or errors:
        return _notice_page(
            request, principal, token, form, values, errors, event_id=event_id, status=400
        )
    outcome = _submit_one(service, line, principal)
    if outcome.refusal is not None:
        return _notice_page(
            request,
            principal,
            token,
            form,
            values,
            {},
            event_id=event_id,
            refusal=outcome.refusal,
            status=400,
        )
    query = urlencode(
        {
            "type": form.type,
            "posted": event_id,
            "unit": values["unit"],
            "dup": "1" if outcome.duplicate else "",
        }
    )
    return RedirectResponse(_path(request, "notice_form") + "?" + query, status_code=303)


def _posted_banner(service: Service, type_name: str, event_id: str, unit_id: str, dup: bool) -> str:
    # Built from what the redirect carries, but only from values of a known shape, so that a
    # crafted link cannot make the page say something of its own.
    unit = service.registry.unit(unit_id)
    if not _EVENT_ID.fullmatch(event_id) or unit is None:
        return ""
    banner = f"{type_name} · {unit.name} · 提交编号 {event_id}"
    return banner + ("（此前已受理，未重复记录）" if dup else "")


def _centre_only(principal: Principal) -> str:
    return f"发布通报仅限安全中心账号；您是{ROLE_NAMES.get(principal.role, principal.role)}账号。"


def _notice_page(
    request: Request,
    principal: Principal,
    token: str,
    form: Any,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    event_id: str | None = None,
    posted: str = "",
    refusal: str | None = None,
    status: int = 200,
) -> Response:
    return _render(
        request,
        "notice_form.html",
        status,
        title="发布通报",
        page="notice",
        principal=principal,
        csrf=_csrf_for(token),
        types=[(f.type, f.name) for f in FORMS],
        form=form,
        units=_units(_service(request), principal),
        values=values,
        errors=errors,
        event_id=event_id or _new_event_id(),
        posted=posted,
        refusal=refusal,
    )


# -- a unit's deadlines -----------------------------------------------------------------------


@router.get("/unit", name="unit_page")
def unit_page(request: Request, unit: str = "", done: str = "") -> Response:
    signed = _signed_in(request)
    if signed is None:
        return _to_login(request)
    principal, token = signed
    return _unit_view(request, principal, token, unit, done=done)


def _unit_view(
    request: Request,
    principal: Principal,
    token: str,
    unit_id: str,
    *,
    done: str = "",
    refusal: str | None = None,
    status: int = 200,
) -> Response:
    service = _service(request)
    choices = _units(service, principal)
    if principal.role not in ("unit", "centre", "auditor") or not choices:
        return _refuse(request, principal, _csrf_for(token), "您的账号没有可查看的单位。")
    default = principal.scope if any(u.id == principal.scope for u in choices) else choices[0].id
    wanted = unit_id or default
    unit = next((u for u in choices if u.id == wanted), None)
    if unit is None:
        return _refuse(request, principal, _csrf_for(token), "该单位不在您的查看范围内。")
    now = datetime.now(UTC)
    reader = service.reader()
    try:
        states = sorted(reader.deadlines(unit=unit.id), key=lambda s: (s.due, s.ref))
    finally:
        reader.close()
    rows = [deadline_row(s, now, _new_event_id()) for s in states]
    return _render(
        request,
        "unit.html",
        status,
        title=f"整改期限 · {unit.name}",
        page="unit",
        principal=principal,
        csrf=_csrf_for(token),
        unit=unit,
        choices=choices,
        open_rows=[r for r in rows if r.status in ("open", "overdue")],
        closed_rows=[r for r in rows if r.status not in ("open", "overdue")],
        can_report=principal.role == "unit",
        done=next((f"{r.button} {r.ref}" for r in rows if r.ref == done), ""),
        refusal=refusal,
    )


@router.post("/unit/feedback", name="feedback_submit")
async def feedback_submit(request: Request) -> Response:
    signed = _signed_in(request)
    if signed is None:
        return _to_login(request)
    principal, token = signed
    data = await request.form()
    if not _csrf_ok(data, token):
        return _refuse(request, principal, _csrf_for(token), "表单已过期，请刷新页面后重试。")
    unit, kind, ref = (_form_value(data, n) for n in ("unit", "kind", "ref"))
    if principal.role != "unit":
        return _refuse(request, principal, _csrf_for(token), "修复反馈只能由本单位账号提交。")
    limited = _over_rate(request, principal, token)
    if limited is not None:
        return limited
    if unit not in {u.id for u in _units(_service(request), principal)}:
        return _refuse(request, principal, _csrf_for(token), "该单位不在您的管辖范围内。")
    if kind not in FEEDBACK or not ref:
        return _refuse(request, principal, _csrf_for(token), "反馈缺少通报类型或编号。")
    _, event_type, ref_field, _ = FEEDBACK[kind]
    event = {
        "event_id": _form_value(data, "event_id") or _new_event_id(),
        "type": event_type,
        "unit": unit,
        "at": datetime.now(SHANGHAI).replace(microsecond=0).isoformat(),
        ref_field: ref,
    }
    outcome = _submit_one(_service(request), json.dumps(event, ensure_ascii=False), principal)
    if outcome.refusal is not None:
        return _unit_view(request, principal, token, unit, refusal=outcome.refusal, status=400)
    query = urlencode({"unit": unit, "done": ref})
    return RedirectResponse(_path(request, "unit_page") + "?" + query, status_code=303)


# -- the intake -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    duplicate: bool = False
    refusal: str | None = None


def _submit_one(service: Service, line: str, principal: Principal) -> _Outcome:
    """Post one event through the same intake as `POST /v1/events`."""
    try:
        result = service.submit([line], principal)
    except (ServiceBusy, ServiceUnavailable) as exc:
        return _Outcome(refusal=f"服务暂不可用，请稍后重试（{exc}）。")
    item = result.lines[0] if result.lines else None
    if item is not None and item.status == "accepted":
        return _Outcome()
    if item is not None and item.status == "duplicate":
        return _Outcome(duplicate=True)
    reason = (item.reason if item is not None else None) or result.error or "未受理。"
    return _Outcome(refusal=reason)
