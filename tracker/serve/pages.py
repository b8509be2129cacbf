"""The two web pages of `tracker serve`, in Chinese: the security centre's notice form and a unit's
open deadlines with a 修复反馈 button. Server-rendered Jinja2, no script.

Sessions, CSRF and rendering are in tracker/serve/page_session.py; the form's fields in
notice_forms.py; the deadline rows in deadline_rows.py.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from tracker.principals import Principal
from tracker.serve.deadline_rows import FEEDBACK, deadline_row
from tracker.serve.notice_forms import (
    FORM_BY_TYPE,
    FORMS,
    SHANGHAI,
    build_event,
    now_local,
)
from tracker.serve.page_session import (
    COOKIE,
    EVENT_ID,
    HERE,
    LOGIN_COOKIE,
    ROLE_NAMES,
    csrf_for,
    csrf_ok,
    form_value,
    new_event_id,
    over_rate,
    path_of,
    refuse,
    render,
    safe_next,
    service_of,
    set_cookie,
    signed_in,
    to_login,
    units_of,
)
from tracker.serve.service import Service, ServiceBusy, ServiceUnavailable

router = APIRouter(include_in_schema=False)


# -- login ------------------------------------------------------------------------------------


@router.get("/", name="home")
def home(request: Request) -> Response:
    signed = signed_in(request)
    if signed is None:
        return to_login(request)
    page = "notice_form" if signed[0].role == "centre" else "unit_page"
    return RedirectResponse(path_of(request, page), status_code=303)


@router.get("/login", name="login_form")
def login_form(request: Request, next: str = "/") -> Response:
    nonce = secrets.token_urlsafe(24)
    response = render(request, "login.html", title="登录", csrf=nonce, next=safe_next(next))
    set_cookie(request, response, LOGIN_COOKIE, nonce)
    return response


@router.post("/login", name="login")
async def login(request: Request) -> Response:
    form = await request.form()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    sent = form_value(form, "csrf")
    next_path = safe_next(form_value(form, "next"))
    if not nonce or not hmac.compare_digest(sent.encode(), nonce.encode()):
        return render(
            request,
            "login.html",
            403,
            title="登录",
            csrf=nonce,
            next=next_path,
            error="表单已过期，请重新登录。",
        )
    token = form_value(form, "token").strip()
    principal = request.app.state.principals.authenticate(token) if token else None
    if principal is None:
        return render(
            request,
            "login.html",
            401,
            title="登录",
            csrf=nonce,
            next=next_path,
            error="令牌无效或已被吊销，请向管理员确认。",
        )
    response = RedirectResponse(next_path, status_code=303)
    set_cookie(request, response, COOKIE, token)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/logout", name="logout")
async def logout(request: Request) -> Response:
    signed = signed_in(request)
    form = await request.form()
    if signed is not None and not csrf_ok(form, signed[1]):
        return refuse(request, signed[0], csrf_for(signed[1]), "表单已过期，请刷新页面后重试。")
    response = RedirectResponse(path_of(request, "login_form"), status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/static/pages.css", name="pages_css")
def pages_css() -> Response:
    return FileResponse(HERE / "static" / "pages.css", media_type="text/css")


# -- the security centre's notice form --------------------------------------------------------


@router.get("/notices/new", name="notice_form")
def notice_form(
    request: Request, type: str = "vuln.notice", posted: str = "", unit: str = "", dup: str = ""
) -> Response:
    signed = signed_in(request)
    if signed is None:
        return to_login(request)
    principal, token = signed
    if principal.role != "centre":
        return refuse(request, principal, csrf_for(token), _centre_only(principal))
    form = FORM_BY_TYPE.get(type, FORMS[0])
    now = datetime.now(UTC)
    return _notice_page(
        request,
        principal,
        token,
        form,
        {"at": now_local(now)},
        {},
        posted=_posted_banner(service_of(request), form.name, posted, unit, dup == "1"),
    )


@router.post("/notices/new", name="notice_submit")
async def notice_submit(request: Request) -> Response:
    signed = signed_in(request)
    if signed is None:
        return to_login(request)
    principal, token = signed
    if principal.role != "centre":
        return refuse(request, principal, csrf_for(token), _centre_only(principal))
    data = await request.form()
    if not csrf_ok(data, token):
        return refuse(request, principal, csrf_for(token), "表单已过期，请刷新页面后重试。")
    limited = over_rate(request, principal, token)
    if limited is not None:
        return limited
    form = FORM_BY_TYPE.get(form_value(data, "type"))
    if form is None:
        return refuse(request, principal, csrf_for(token), "未知的通报类型。")
    values = {name: form_value(data, name) for name in ("unit", *(f.name for f in form.fields))}
    event_id = form_value(data, "event_id") or new_event_id()
    service = service_of(request)
    line, errors = build_event(
        form, values, event_id=event_id, unit=values["unit"], now=datetime.now(UTC)
    )
    if values["unit"] and not errors.get("unit"):
        allowed = {u.id for u in units_of(service, principal)}
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
            "type": form.event_type,
            "posted": event_id,
            "unit": values["unit"],
            "dup": "1" if outcome.duplicate else "",
        }
    )
    return RedirectResponse(path_of(request, "notice_form") + "?" + query, status_code=303)


def _posted_banner(service: Service, type_name: str, event_id: str, unit_id: str, dup: bool) -> str:
    # Built from what the redirect carries, but only from values of a known shape, so that a
    # crafted link cannot make the page say something of its own.
    unit = service.registry.unit(unit_id)
    if not EVENT_ID.fullmatch(event_id) or unit is None:
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
    return render(
        request,
        "notice_form.html",
        status,
        title="发布通报",
        page="notice",
        principal=principal,
        csrf=csrf_for(token),
        types=[(f.event_type, f.name) for f in FORMS],
        form=form,
        units=units_of(service_of(request), principal),
        values=values,
        errors=errors,
        event_id=event_id or new_event_id(),
        posted=posted,
        refusal=refusal,
    )


# -- a unit's deadlines -----------------------------------------------------------------------


@router.get("/unit", name="unit_page")
def unit_page(request: Request, unit: str = "", done: str = "") -> Response:
    signed = signed_in(request)
    if signed is None:
        return to_login(request)
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
    service = service_of(request)
    choices = units_of(service, principal)
    if principal.role not in ("unit", "centre", "auditor") or not choices:
        return refuse(request, principal, csrf_for(token), "您的账号没有可查看的单位。")
    default = principal.scope if any(u.id == principal.scope for u in choices) else choices[0].id
    wanted = unit_id or default
    unit = next((u for u in choices if u.id == wanted), None)
    if unit is None:
        return refuse(request, principal, csrf_for(token), "该单位不在您的查看范围内。")
    now = datetime.now(UTC)
    reader = service.reader()
    try:
        states = sorted(reader.deadlines(unit=unit.id), key=lambda s: (s.due, s.ref))
    finally:
        reader.close()
    rows = [deadline_row(s, now, new_event_id()) for s in states]
    return render(
        request,
        "unit.html",
        status,
        title=f"整改期限 · {unit.name}",
        page="unit",
        principal=principal,
        csrf=csrf_for(token),
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
    signed = signed_in(request)
    if signed is None:
        return to_login(request)
    principal, token = signed
    data = await request.form()
    if not csrf_ok(data, token):
        return refuse(request, principal, csrf_for(token), "表单已过期，请刷新页面后重试。")
    unit, kind, ref = (form_value(data, n) for n in ("unit", "kind", "ref"))
    if principal.role != "unit":
        return refuse(request, principal, csrf_for(token), "修复反馈只能由本单位账号提交。")
    limited = over_rate(request, principal, token)
    if limited is not None:
        return limited
    if unit not in {u.id for u in units_of(service_of(request), principal)}:
        return refuse(request, principal, csrf_for(token), "该单位不在您的管辖范围内。")
    if kind not in FEEDBACK or not ref:
        return refuse(request, principal, csrf_for(token), "反馈缺少通报类型或编号。")
    _, event_type, ref_field, _ = FEEDBACK[kind]
    event = {
        "event_id": form_value(data, "event_id") or new_event_id(),
        "type": event_type,
        "unit": unit,
        "at": datetime.now(SHANGHAI).replace(microsecond=0).isoformat(),
        ref_field: ref,
    }
    outcome = _submit_one(service_of(request), json.dumps(event, ensure_ascii=False), principal)
    if outcome.refusal is not None:
        return _unit_view(request, principal, token, unit, refusal=outcome.refusal, status=400)
    query = urlencode({"unit": unit, "done": ref})
    return RedirectResponse(path_of(request, "unit_page") + "?" + query, status_code=303)


# -- the intake -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    duplicate: bool = False
    refusal: str | None = None


def _submit_one(service: Service, line: str, principal: Principal) -> _Outcome:
    """Post one event through the same intake as `POST /v1/events`."""
    try:
        result = service.submit([line], principal, wait_applied=True)  # its verdict shown
    except (ServiceBusy, ServiceUnavailable) as exc:
        return _Outcome(refusal=f"服务暂不可用，请稍后重试（{exc}）。")
    item = result.lines[0] if result.lines else None
    if item is not None and item.status == "accepted":
        return _Outcome()
    if item is not None and item.status == "duplicate":
        return _Outcome(duplicate=True)
    reason = (item.reason if item is not None else None) or result.error or "未受理。"
    return _Outcome(refusal=reason)
