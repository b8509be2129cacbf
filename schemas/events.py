"""The event contract (spec section 2): strict, frozen pydantic models, one per event type.

Unknown fields are rejected so that no deduction amount can ever come from an event. Instants are
bounded (`Instant`), so that no date arithmetic on an accepted event can overflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
RefId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
UnitId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=512)]

# Instants an event may carry: Asia/Shanghai years 1970 to 2199. Far from datetime's year 1/9999
# limits, so converting to +08:00, adding a period or searching working days never overflows, and
# inside the store's DateTime64 range (1900-2299) with room for deadlines computed from them.
_SHANGHAI = timezone(timedelta(hours=8))
FIRST_INSTANT = datetime(1970, 1, 1, tzinfo=_SHANGHAI)
END_INSTANT = datetime(2200, 1, 1, tzinfo=_SHANGHAI)  # exclusive
_RANGE = "1970-01-01T00:00:00+08:00 .. 2199-12-31T23:59:59+08:00"


def _bounded(value: datetime) -> datetime:
    if 1970 < value.year < 2199:
        # inside the range whatever its offset (less than a day): no comparison (two offsets
        # asked, each a call) for nearly every instant of every event
        return value
    # Checking the written year first keeps the comparison itself (a UTC conversion) in range.
    if not (1 < value.year < 9999 and FIRST_INSTANT <= value < END_INSTANT):
        raise PydanticCustomError(
            "instant_out_of_range",
            "{instant} is outside " + _RANGE + ", the instants the contract accepts",
            {"instant": value.isoformat()},
        )
    return value


Instant = Annotated[
    AwareDatetime,
    AfterValidator(_bounded),
    Field(description=f"RFC 3339 with an offset, within {_RANGE}"),
]


class _Event(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    event_id: EventId
    at: Instant


class _UnitEvent(_Event):
    unit: UnitId


class VulnNotice(_UnitEvent):
    type: Literal["vuln.notice"]
    notice_id: RefId
    system: Text
    due: Instant | None = None

    @model_validator(mode="after")
    def _due_after_at(self) -> VulnNotice:
        if self.due is not None and self.due <= self.at:
            # a notice due at or before its own arrival would be overdue on arrival (contract 2)
            raise PydanticCustomError(
                "due_not_after_at",
                "due: {due} is not later than the notice's at {at}",
                {"due": self.due.isoformat(), "at": self.at.isoformat()},
            )
        return self


class VulnFeedback(_UnitEvent):
    type: Literal["vuln.feedback"]
    notice_id: RefId


class OutreachNotice(_UnitEvent):
    type: Literal["outreach.notice"]
    notice_id: RefId
    terminals: Annotated[tuple[Text, ...], Field(min_length=1)]
    cause: Literal["violation", "registrar_missing"] = "violation"


class TerminalFinding(_UnitEvent):
    type: Literal["terminal.finding"]
    terminal: Text
    finding: Literal["antivirus_missing", "unregistered"]


class ExtranetNotice(_UnitEvent):
    type: Literal["extranet.notice"]
    notice_id: RefId
    system: Text | None = None


class CryptoNotice(_UnitEvent):
    type: Literal["crypto.notice"]
    notice_id: RefId
    system: Text


class IncidentReport(_UnitEvent):
    type: Literal["incident.report"]
    incident_id: RefId
    system: Text | None = None


class MlpsFinding(_UnitEvent):
    type: Literal["mlps.finding"]
    system: Text


class ControlFinding(_UnitEvent):
    type: Literal["control.finding"]
    control: Literal["internet_terminal_realname"]


class SupervisionWarning(_UnitEvent):
    type: Literal["supervision.warning"]
    signal_id: RefId


class SupervisionHandled(_UnitEvent):
    type: Literal["supervision.handled"]
    signal_id: RefId


class EventRetracted(_UnitEvent):
    type: Literal["event.retracted"]
    target_event_id: EventId
    reason: Text


class ClockTick(_Event):
    type: Literal["clock.tick"]


UnitEvent = (
    VulnNotice
    | VulnFeedback
    | OutreachNotice
    | TerminalFinding
    | ExtranetNotice
    | CryptoNotice
    | IncidentReport
    | MlpsFinding
    | ControlFinding
    | SupervisionWarning
    | SupervisionHandled
    | EventRetracted
)
Event = Annotated[UnitEvent | ClockTick, Field(discriminator="type")]

EVENT_MODELS: tuple[type[_Event], ...] = (
    VulnNotice,
    VulnFeedback,
    OutreachNotice,
    TerminalFinding,
    ExtranetNotice,
    CryptoNotice,
    IncidentReport,
    MlpsFinding,
    ControlFinding,
    SupervisionWarning,
    SupervisionHandled,
    EventRetracted,
    ClockTick,
)
EVENT_TYPES: frozenset[str] = frozenset(
    m.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in EVENT_MODELS
)

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class EventError(ValueError):
    """An input line that is not a valid event; `reason` is one human-readable line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in err["loc"] if p not in _UNION_TAGS)
        msg = err["msg"]
        if err["type"] == "timezone_aware":
            msg = "naive timestamp (an offset such as +08:00 is required)"
        elif err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag", "?")
            msg = f"unknown event type {tag!r}"
            loc = "type"
        elif err["type"] == "union_tag_not_found":
            msg, loc = "missing event type", "type"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "schema violation: " + "; ".join(parts)


_UNION_TAGS = frozenset(m.model_fields["type"].annotation.__args__[0] for m in EVENT_MODELS)  # type: ignore[union-attr]


def parse_event(raw: str | bytes) -> Event:
    """Parse one JSON event; raise EventError with a one-line reason when it is not valid."""
    try:
        return EVENT_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise EventError(f"malformed JSON: {exc.errors()[0]['msg']}") from None
        raise EventError(_describe(exc)) from None


def event_json_schema() -> dict[str, object]:
    """The event contract as JSON Schema, exported to schemas/event.schema.json."""
    schema = EVENT_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Deduction tracker event (contract v2)"
    return schema
