"""The pure deduction engine: standard library and `schemas` only (no Kafka, ClickHouse, clock)."""

from engine.calendar import CalendarError, WorkCalendar
from engine.core import Engine, run
from engine.outcome import ConfigError, Outcome

__all__ = ["CalendarError", "ConfigError", "Engine", "Outcome", "WorkCalendar", "run"]
