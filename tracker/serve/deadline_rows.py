"""A unit's deadlines as the unit page shows them: Beijing time, the time left, Chinese names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.ledger import DeadlineState
from tracker.serve.notice_forms import show_time

FEEDBACK = {
    # deadline kind -> (shown as, feedback event type, its reference field, button)
    "vuln.notice": ("重大漏洞通报", "vuln.feedback", "notice_id", "修复反馈"),
    "supervision.warning": ("风险预警信号", "supervision.handled", "signal_id", "处置反馈"),
}
STATUS_NAMES = {
    "open": "整改中",
    "met": "按期反馈",
    "late": "逾期反馈",
    "overdue": "已逾期",
    "withdrawn": "已撤回",
}


@dataclass(frozen=True)
class DeadlineRow:
    kind: str
    kind_name: str
    ref: str
    noticed_at: str
    due: str
    notice_due: str | None
    time_left: str
    past_due: bool
    status: str
    status_name: str
    feedback_at: str | None
    button: str
    event_id: str


def time_left(due: datetime, now: datetime) -> str:
    """'剩余 3 天 4 小时' until the due instant, '已超期 …' after it (minutes when under an hour).

    At the due instant itself there is still time: feedback dated then is on time (contract 5.9).
    """
    delta = due - now
    span = abs(delta)
    days, hours, minutes = span.days, span.seconds // 3600, span.seconds % 3600 // 60
    if days:
        text = f"{days} 天 {hours} 小时"
    elif hours:
        text = f"{hours} 小时 {minutes} 分钟"
    else:
        text = f"{minutes} 分钟" if minutes else "不足 1 分钟"
    return f"剩余 {text}" if delta >= timedelta(0) else f"已超期 {text}"


def deadline_row(state: DeadlineState, now: datetime, event_id: str) -> DeadlineRow:
    name, _, _, button = FEEDBACK.get(state.kind, (state.kind, "", "", "反馈"))
    return DeadlineRow(
        kind=state.kind,
        kind_name=name,
        ref=state.ref,
        noticed_at=show_time(state.noticed_at),
        due=show_time(state.due),
        notice_due=show_time(state.notice_due)
        if state.notice_due is not None and state.notice_due != state.due
        else None,
        time_left=time_left(state.due, now),
        past_due=state.due < now,
        status=state.status,
        status_name=STATUS_NAMES.get(state.status, state.status),
        feedback_at=show_time(state.feedback_at) if state.feedback_at else None,
        button=button,
        event_id=event_id,
    )
