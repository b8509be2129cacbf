"""The security centre's notice form: which fields each event type has, and turning a submitted
form into one contract event or per-field errors in Chinese.

The event models of schemas/events.py stay the only judge of validity: the form builds the same
JSON the API accepts and validates it with them, then places each error next to its field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ValidationError

from schemas.events import (
    ControlFinding,
    CryptoNotice,
    ExtranetNotice,
    IncidentReport,
    MlpsFinding,
    OutreachNotice,
    SupervisionWarning,
    TerminalFinding,
    VulnNotice,
)

SHANGHAI = timezone(timedelta(hours=8))
# The intake rejects events dated further ahead of its clock than this (contract 2); the form says so
# next to the field instead of after a round trip.
MAX_AHEAD = timedelta(minutes=10)


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"  # text | datetime | lines | select
    required: bool = True
    options: tuple[tuple[str, str], ...] = ()
    help: str = ""


@dataclass(frozen=True)
class NoticeForm:
    event_type: str
    name: str
    meaning: str
    model: type[BaseModel]
    fields: tuple[Field, ...]


_AT = Field(
    "at", "通报时间", "datetime", help="默认为打开本页的时间；不得晚于当前时间 10 分钟以上。"
)
_NOTICE_ID = Field("notice_id", "通报编号", help="同一通报再次发布时请使用相同编号，只计一次。")
_SYSTEM = Field("system", "系统名称")
_SYSTEM_OPT = Field("system", "系统名称", required=False)

FORMS: tuple[NoticeForm, ...] = (
    NoticeForm(
        "vuln.notice",
        "重大漏洞通报",
        "关键信息系统存在重大漏洞被通报，开启整改期限（修复反馈）。",
        VulnNotice,
        (
            _AT,
            _NOTICE_ID,
            _SYSTEM,
            Field(
                "due",
                "整改期限",
                "datetime",
                required=False,
                help="可不填：条款规定期限（如 2 周内）的，按条款计算；仅规定“按期”的条款须填写。",
            ),
        ),
    ),
    NoticeForm(
        "outreach.notice",
        "违规外联通报",
        "终端违规外联，或未安装违规外联注册器。",
        OutreachNotice,
        (
            _AT,
            _NOTICE_ID,
            Field("terminals", "终端", "lines", help="每行一个终端（IP 或名称）。"),
            Field(
                "cause",
                "原因",
                "select",
                options=(("violation", "违规外联"), ("registrar_missing", "未安装违规外联注册器")),
            ),
        ),
    ),
    NoticeForm(
        "terminal.finding",
        "终端检查发现",
        "政务网终端未安装防病毒软件，或未注册准入注册软件。",
        TerminalFinding,
        (
            _AT,
            Field("terminal", "终端"),
            Field(
                "finding",
                "问题",
                "select",
                options=(
                    ("antivirus_missing", "未安装防病毒软件"),
                    ("unregistered", "未注册准入软件"),
                ),
            ),
        ),
    ),
    NoticeForm(
        "extranet.notice",
        "外网接入违规通报",
        "违反电子政务外网接入安全规范，被通报。",
        ExtranetNotice,
        (_AT, _NOTICE_ID, _SYSTEM_OPT),
    ),
    NoticeForm(
        "crypto.notice",
        "商用密码未落实通报",
        "未落实商用密码应用，被通报。",
        CryptoNotice,
        (_AT, _NOTICE_ID, _SYSTEM),
    ),
    NoticeForm(
        "incident.report",
        "重大网络安全事件",
        "发生重大网络安全事件。",
        IncidentReport,
        (_AT, Field("incident_id", "安全事件编号"), _SYSTEM_OPT),
    ),
    NoticeForm(
        "mlps.finding",
        "等级保护不合规",
        "系统未按要求开展等级保护测评、备案。",
        MlpsFinding,
        (_AT, _SYSTEM),
    ),
    NoticeForm(
        "control.finding",
        "终端实名管控缺失",
        "未对互联网终端进行实名认证和安全状态检测。",
        ControlFinding,
        (
            _AT,
            Field(
                "control",
                "管控项",
                "select",
                options=(("internet_terminal_realname", "互联网终端实名认证与安全检测"),),
            ),
        ),
    ),
    NoticeForm(
        "supervision.warning",
        "风险预警信号",
        "监管平台推送的风险预警信号，开启处置期限（3 个工作日）。",
        SupervisionWarning,
        (_AT, Field("signal_id", "信号编号")),
    ),
)
FORM_BY_TYPE: Mapping[str, NoticeForm] = {f.event_type: f for f in FORMS}


def now_local(now: datetime) -> str:
    """A datetime-local input's value for `now`, in Beijing time, to the second."""
    return now.astimezone(SHANGHAI).replace(tzinfo=None, microsecond=0).isoformat()


def show_time(value: datetime) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _local_instant(text: str) -> datetime:
    # A datetime-local input sends no offset: the form states that its times are Beijing time.
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=SHANGHAI) if value.tzinfo is None else value


def build_event(
    form: NoticeForm,
    values: Mapping[str, str],
    *,
    event_id: str,
    unit: str,
    now: datetime,
) -> tuple[str | None, dict[str, str]]:
    """The event's JSON line, or None and the errors by field name (Chinese, one line each)."""
    errors: dict[str, str] = {}
    event: dict[str, Any] = {"event_id": event_id, "type": form.event_type, "unit": unit}
    for field in form.fields:
        raw = values.get(field.name, "").strip()
        if not raw:
            if field.required:
                errors[field.name] = "必填。"
            continue
        if field.kind == "datetime":
            try:
                event[field.name] = _local_instant(raw).isoformat()
            except ValueError:
                errors[field.name] = "时间格式应为 年-月-日 时:分，例如 2026-03-01 10:00。"
        elif field.kind == "lines":
            event[field.name] = [line.strip() for line in raw.splitlines() if line.strip()]
        else:
            event[field.name] = raw
    at, due = event.get("at"), event.get("due")
    if at is not None and datetime.fromisoformat(at) > now + MAX_AHEAD:
        errors["at"] = "通报时间晚于当前时间 10 分钟以上，不予受理。"
    # The model checks this only once every field is valid; the form says it at once.
    if (
        at is not None
        and due is not None
        and datetime.fromisoformat(due) <= datetime.fromisoformat(at)
    ):
        errors["due"] = _chinese({"type": "due_not_after_at"})
    if not unit:
        errors["unit"] = "请选择单位。"
    line = json.dumps(event, ensure_ascii=False)
    try:
        form.model.model_validate_json(line)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = err["loc"]
            name = str(loc[0]) if loc else _MODEL_LEVEL.get(err["type"], "")
            errors.setdefault(name, _chinese(err))
    return (None, errors) if errors else (line, {})


# Errors a model validator raises about the whole event, placed next to the field they concern.
_MODEL_LEVEL = {"due_not_after_at": "due"}


def _chinese(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in ("missing", "string_too_short"):
        return "必填。"
    if kind == "too_short":
        return "至少填写一项。"
    if kind == "string_too_long":
        return f"过长：最多 {ctx.get('max_length', '?')} 个字符。"
    if kind == "due_not_after_at":
        return "整改期限必须晚于通报时间。"
    if kind == "instant_out_of_range":
        return "时间超出可接受的范围（1970 年至 2199 年）。"
    if kind == "literal_error":
        return "请从列表中选择。"
    return str(err["msg"])
