"""Which instant judges a notice or a signal (contract 5.7, v2).

The first overdue rule covering the notice decides. A period its clause states (2 weeks, 3 working
days) is counted the civil-code way: from the day after the day of receipt in Asia/Shanghai, ending
at 24:00 of its last day; the notice's own `due` is kept for show but moves nothing. A clause that
says only 按期 states no period: the notice's own `due` decides, and a notice without one is
rejected. A notice no rule covers keeps its `due`, else the default period of its type.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from engine.calendar import CalendarError, WorkCalendar
from engine.clock import SHANGHAI
from engine.compiled import CompiledRule
from engine.outcome import Rejected
from schemas.rulebook import Deadline

DEFAULT_PERIODS: dict[str, Deadline] = {
    # For information only: what a notice no overdue rule covers is tracked against.
    "vuln.notice": Deadline(calendar_days=14),
    "supervision.warning": Deadline(working_days=3),
}


def end_of_calendar_days(at: datetime, count: int) -> datetime:
    """24:00 of the `count`-th calendar day after the (Shanghai) day of `at`. Memoised by day:
    the notices of one day share it (an instant is immutable)."""
    day = at.astimezone(SHANGHAI).toordinal()
    end = _DAY_ENDS.get((day, count))
    if end is None:
        if len(_DAY_ENDS) >= 4096:
            _DAY_ENDS.clear()
        last = date.fromordinal(day) + timedelta(days=count)
        end = _DAY_ENDS[(day, count)] = datetime.combine(
            last + timedelta(days=1), time(0), SHANGHAI
        )
    return end


_DAY_ENDS: dict[tuple[int, int], datetime] = {}


def period_end(at: datetime, deadline: Deadline, calendar: WorkCalendar) -> datetime:
    if deadline.calendar_days is not None:
        return end_of_calendar_days(at, deadline.calendar_days)
    assert deadline.working_days is not None, "a period to count, not the notice's due"
    try:
        return calendar.end_of_working_days(at, deadline.working_days)
    except CalendarError as exc:
        raise Rejected(str(exc)) from None


def judge_due(
    *,
    notice: tuple[str, str, str],
    at: datetime,
    notice_due: datetime | None,
    rule: CompiledRule | None,
    default: Deadline,
    calendar: WorkCalendar,
) -> datetime:
    """The due instant, in Asia/Shanghai, of the notice received at `at`, judged by `rule`
    (None: no overdue rule covers it); `notice_due` must be given in Asia/Shanghai too. Raises
    Rejected when the notice, (event type, reference, unit), cannot be judged."""
    if rule is None:
        return notice_due if notice_due is not None else period_end(at, default, calendar)
    deadline = rule.rule.deadline
    assert deadline is not None, "the loader requires a deadline on every overdue rule"
    if not deadline.by_notice_due:
        return period_end(at, deadline, calendar)
    if notice_due is None:
        kind, ref, unit = notice
        raise Rejected(
            f"{kind} {ref} of unit {unit} carries no due, and {rule.rulebook} {rule.indicator} item {rule.item} "
            f"judges it only by its deadline (按期) without stating a period: post it again "
            f"with a due (clause: {rule.clause})"
        )
    return notice_due
