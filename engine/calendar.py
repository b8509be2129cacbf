"""The official PRC working-day calendar, as a value (spec 5.7).

The engine stays pure: the official holiday data is handed in as a `WorkCalendar` value, built by
an adapter (`config.holidays`) from chinesecalendar plus an optional override file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from engine.clock import SHANGHAI


class CalendarError(ValueError):
    """A working-day deadline in a year the calendar data does not know."""


@dataclass(frozen=True, slots=True)
class WorkCalendar:
    """Weekdays off (`holidays`) and weekend make-up working days (`workdays`) per known year."""

    years: frozenset[int]
    holidays: frozenset[date]
    workdays: frozenset[date]

    @classmethod
    def of(
        cls, years: Iterable[int], holidays: Iterable[date], workdays: Iterable[date]
    ) -> WorkCalendar:
        return cls(frozenset(years), frozenset(holidays), frozenset(workdays))

    def is_workday(self, day: date) -> bool:
        if day.year not in self.years:
            raise CalendarError(
                f"the working-day calendar does not know {day.year}; supply that year's holiday "
                "list with --holidays FILE (see docs/calendar.md)"
            )
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def end_of_working_days(self, at: datetime, count: int) -> datetime:
        """24:00 of the `count`-th working day after the (Shanghai) day of `at`."""
        day = at.astimezone(SHANGHAI).date()
        found = 0
        while found < count:
            day += timedelta(days=1)
            if self.is_workday(day):
                found += 1
        return datetime.combine(day + timedelta(days=1), time(0), SHANGHAI)


NO_CALENDAR = WorkCalendar(frozenset(), frozenset(), frozenset())
