"""Rulebooks: one year's deduction rules for one tier, transcribed from a seed (spec section 4).

A rulebook has indicators (each with a maximum), an indicator has numbered items (clauses), and an
item has one or more rules: what triggers it, how much it deducts, how occurrences are counted.
Clauses with no event type in the contract are kept under `unruled`, each with the reason.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.points import Points
from schemas.registry import Tier

Trigger = Literal[
    "vuln.notice",
    "vuln.overdue",
    "outreach.notice",
    "terminal.finding",
    "extranet.notice",
    "crypto.notice",
    "incident.report",
    "mlps.finding",
    "control.finding",
    "supervision.overdue",
]
Counting = Literal[
    "per_notice",
    "per_notice_terminal",
    "per_year_terminal_finding",
    "per_year_system",
    "per_incident",
    "per_signal",
    "once_per_year",
]
Scope = Literal["own", "jurisdiction"]

# Which counting keys make sense for which trigger; `once_per_year` fits every trigger.
COUNTINGS: dict[str, frozenset[str]] = {
    "vuln.notice": frozenset({"per_notice"}),
    "vuln.overdue": frozenset({"per_notice"}),
    "outreach.notice": frozenset({"per_notice", "per_notice_terminal"}),
    "terminal.finding": frozenset({"per_year_terminal_finding"}),
    "extranet.notice": frozenset({"per_notice"}),
    "crypto.notice": frozenset({"per_notice", "per_year_system"}),
    "incident.report": frozenset({"per_incident"}),
    "mlps.finding": frozenset({"per_year_system"}),
    "control.finding": frozenset(),
    "supervision.overdue": frozenset({"per_signal"}),
}
DEADLINE_TRIGGERS: frozenset[str] = frozenset({"vuln.overdue", "supervision.overdue"})
# The event fields a rule may match on, per trigger (all other fields carry no choice).
MATCHABLE: dict[str, frozenset[str]] = {
    "outreach.notice": frozenset({"cause"}),
    "terminal.finding": frozenset({"finding"}),
    "control.finding": frozenset({"control"}),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Deadline(_Frozen):
    """The remediation period an overdue rule's clause sets (contract 5.7), exactly one of:

    - `calendar_days`: a period stated in the clause ("接到通报2周内" = 14), counted from the day
      after receipt in Asia/Shanghai and ending at 24:00 of its last day;
    - `working_days`: N PRC working days, counted and ending the same way;
    - `by_notice_due: true`: the clause says only "by its deadline" (按期) and states no period,
      so the notice's own `due` decides and a notice without one is rejected.
    """

    calendar_days: int | None = Field(default=None, ge=1, le=366)
    working_days: int | None = Field(default=None, ge=1, le=60)
    by_notice_due: Literal[True] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_v1_period(cls, data: Any) -> Any:
        if isinstance(data, dict) and "period_days" in data:
            raise ValueError(
                "period_days (contract v1: at + N days) is gone: write calendar_days (counted "
                "from the day after receipt, to 24:00 of the last day) or by_notice_due: true"
            )
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Deadline:
        kinds = (self.calendar_days, self.working_days, self.by_notice_due)
        if sum(k is not None for k in kinds) != 1:
            raise ValueError(
                "a deadline needs exactly one of calendar_days, working_days or by_notice_due"
            )
        return self

    def describe(self) -> str:
        """The period in words, as `tracker rulebooks show` prints it."""
        if self.by_notice_due:
            return "by the notice's due"
        if self.working_days is not None:
            return _count(self.working_days, "working day")
        assert self.calendar_days is not None
        days = self.calendar_days
        period = _count(days // 7, "week") if days % 7 == 0 else _count(days, "calendar day")
        return f"{period}, counted from the day after receipt"


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


class Rule(_Frozen):
    on: Trigger
    match: dict[str, str] = Field(default_factory=dict)
    points: Points = Field(gt=0)
    counting: Counting
    scope: Scope = "own"
    deadline: Deadline | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Rule:
        allowed = COUNTINGS[self.on] | {"once_per_year"}
        if self.counting not in allowed:
            raise ValueError(
                f"counting {self.counting!r} does not fit trigger {self.on!r} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
        if (self.on in DEADLINE_TRIGGERS) != (self.deadline is not None):
            raise ValueError(f"trigger {self.on!r}: a deadline is required for *.overdue only")
        if self.deadline is not None and self.deadline.by_notice_due and self.on != "vuln.overdue":
            raise ValueError(f"trigger {self.on!r}: only a vulnerability notice carries a due")
        unknown = set(self.match) - MATCHABLE.get(self.on, frozenset())
        if unknown:
            raise ValueError(f"trigger {self.on!r} cannot match on {', '.join(sorted(unknown))}")
        return self

    @property
    def key(self) -> str:
        """The rule's id within its item: the trigger plus any match, e.g. `terminal.finding[...]`."""
        if not self.match:
            return self.on
        return self.on + "[" + ",".join(f"{k}={v}" for k, v in sorted(self.match.items())) + "]"


class Item(_Frozen):
    number: str = Field(min_length=1)
    clause: str = Field(min_length=1)
    cap_points: Points | None = Field(default=None, gt=0)
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _has_rules(self) -> Item:
        if not self.rules:
            raise ValueError(f"item {self.number}: no trigger (list it under `unruled` instead)")
        keys = [r.key for r in self.rules]
        if len(set(keys)) != len(keys):
            raise ValueError(f"item {self.number}: two rules with the same trigger and match")
        return self


class Unruled(_Frozen):
    number: str
    clause: str
    why: str = Field(min_length=1)


class SharedCap(_Frozen):
    id: str
    cap_points: Points = Field(gt=0)
    items: tuple[str, ...] = Field(min_length=2)


class Indicator(_Frozen):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    max_points: Points = Field(gt=0)
    items: tuple[Item, ...] = ()
    shared_caps: tuple[SharedCap, ...] = ()
    unruled: tuple[Unruled, ...] = ()

    @model_validator(mode="after")
    def _caps_fit(self) -> Indicator:
        numbers = [i.number for i in self.items]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"indicator {self.id}: duplicate item numbers")
        for item in self.items:
            if item.cap_points is not None and item.cap_points > self.max_points:
                raise ValueError(
                    f"indicator {self.id} item {item.number}: cap {item.cap_points} is larger "
                    f"than the indicator maximum {self.max_points}"
                )
        for cap in self.shared_caps:
            if cap.cap_points > self.max_points:
                raise ValueError(
                    f"indicator {self.id}: shared cap {cap.id} ({cap.cap_points}) is larger "
                    f"than the indicator maximum {self.max_points}"
                )
            missing = set(cap.items) - set(numbers)
            if missing:
                raise ValueError(f"shared cap {cap.id}: unknown items {', '.join(sorted(missing))}")
        return self


class Source(_Frozen):
    seed: str
    where: str


class Rulebook(_Frozen):
    id: str = Field(pattern=r"^[a-z0-9-]+$")
    year: int
    tier: Tier
    title: str
    source: Source
    scope_note: str = ""
    indicators: tuple[Indicator, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Rulebook:
        ids = [i.id for i in self.indicators]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate indicator ids")
        return self

    def indicator(self, indicator_id: str) -> Indicator:
        for ind in self.indicators:
            if ind.id == indicator_id:
                return ind
        raise KeyError(indicator_id)
