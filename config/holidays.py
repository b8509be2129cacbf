"""The official PRC working-day calendar for the engine: chinesecalendar's data plus an optional
override file for years it does not know (or corrections), in YAML:

    2027:
      holidays: [2027-01-01, 2027-02-08]   # weekdays off
      workdays: [2027-02-06]               # weekend make-up working days
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from config.yaml12 import safe_load
from engine.calendar import WorkCalendar


class HolidayFileError(ValueError):
    pass


def official_calendar(override: Path | None = None) -> WorkCalendar:
    from chinese_calendar import constants  # the package's own tables, 2004 to its last year

    holidays = set(constants.holidays)
    workdays = set(constants.workdays)
    years = {d.year for d in holidays | workdays}
    if override is not None:
        for year, spec in _read_override(override).items():
            holidays = {d for d in holidays if d.year != year} | set(spec["holidays"])
            workdays = {d for d in workdays if d.year != year} | set(spec["workdays"])
            years.add(year)
    return WorkCalendar.of(years, holidays, workdays)


def _read_override(path: Path) -> dict[int, dict[str, list[date]]]:
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HolidayFileError(f"{path}: cannot read holiday file: {exc}") from None
    if not isinstance(data, dict):
        raise HolidayFileError(f"{path}: expected a mapping of year -> holidays/workdays")
    out: dict[int, dict[str, list[date]]] = {}
    for year, spec in data.items():
        if not isinstance(year, int) or not isinstance(spec, dict):
            raise HolidayFileError(f"{path}: entry {year!r} must be `YEAR: {{holidays, workdays}}`")
        extra = set(spec) - {"holidays", "workdays"}
        if extra:
            raise HolidayFileError(f"{path}: {year}: unknown keys {', '.join(sorted(extra))}")
        lists: dict[str, list[date]] = {}
        for key in ("holidays", "workdays"):
            days = spec.get(key) or []
            if not all(isinstance(d, date) and d.year == year for d in days):
                raise HolidayFileError(f"{path}: {year}.{key}: dates of {year} as YYYY-MM-DD")
            lists[key] = list(days)
        out[year] = lists
    return out
