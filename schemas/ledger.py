"""What the engine produces: ledger entries and deadline states (spec section 6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from schemas.points import Points

_M = TypeVar("_M", bound=BaseModel)

DeadlineStatus = Literal["open", "met", "late", "overdue", "withdrawn"]
DeadlineKind = Literal["vuln.notice", "supervision.warning"]


class LedgerEntry(BaseModel):
    """One append-only deduction line, citing its rule and its triggering event(s).

    A reversal has negative `requested`/`applied` and names the entry it reverses, so the sum of
    `applied` over the ledger is always the points lost.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    entry_id: str
    seq: int
    unit: str
    year: int
    rulebook: str
    indicator: str
    item: str
    rule: str
    count_key: str
    source_unit: str
    event_ids: tuple[str, ...]
    requested: Points
    applied: Points
    capped: bool
    reverses: str | None
    effective_at: AwareDatetime
    reason: str
    # Tamper evidence (engine/chain.py): the SHA-256 of the fields above in canonical form, and
    # the chain value linking the entry to the previous one of its (unit, year) by `seq`.
    digest: str = ""
    chain: str = ""


class DeadlineState(BaseModel):
    """The latest state of one notice's (or signal's) remediation deadline; `version` grows.

    `due` is the instant that judges the notice (contract 5.7): the period its clause states, or
    the notice's own due where the clause says only 按期. `notice_due` is the due the notice
    carried (None when it carried none), kept and shown even where it moves nothing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    unit: str
    kind: DeadlineKind
    ref: str
    year: int
    event_id: str
    noticed_at: AwareDatetime
    due: AwareDatetime
    notice_due: AwareDatetime | None = None
    status: DeadlineStatus
    feedback_at: AwareDatetime | None
    updated_at: AwareDatetime
    version: int


class EntrySeen(BaseModel):
    """When a ledger entry entered the ledger in event time, where that is not its
    `effective_at` (docs/semantics.md, "As of an instant"): an overdue entry appears when the
    clock passes the due instant it is dated at (`after`: only strictly after `seen_at`), and an
    entry re-issued by a retraction or a reversal appears at that later event's time although it
    keeps the date of the occurrence it counts. Every other entry is seen at its `effective_at`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    entry_id: str
    unit: str
    year: int
    seen_at: AwareDatetime
    after: bool


class IndicatorStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    max: Points
    deducted: Points
    remaining: Points


class DeadlineView(BaseModel):
    """One notice of `tracker status --json`: `notice_due` appears only when the notice carried a
    due other than the instant that judges it (the contract's shape otherwise)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str
    due: str
    status: DeadlineStatus
    notice_due: str | None = None

    @model_serializer(mode="wrap")
    def _shown(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if out.get("notice_due") is None:
            out.pop("notice_due", None)
        return out


class UnitYearStatus(BaseModel):
    """One object of `tracker status --json` (the JSON shape is a contract)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str
    year: int
    rulebook: str | None
    deducted: Points
    indicators: tuple[IndicatorStatus, ...]
    deadlines: tuple[DeadlineView, ...]


class DeadLetter(BaseModel):
    """A rejected input, kept with its raw text and the reason; never lost, never deducted.
    `posted_by` and `received_at` are the input's envelope (schemas/envelope.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    letter_id: str
    origin: str  # where it came from: "<file>:<line>" or "kafka:<topic>/<partition>/<offset>"
    raw: str
    reason: str
    posted_by: str
    received_at: AwareDatetime


class LoggedEvent(BaseModel):
    """An accepted event in the replayable log, in arrival order per partition, with its
    envelope (who posted it, when it was received: schemas/envelope.py) beside the body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    partition: int
    seq: int
    unit: str
    type: str
    at: AwareDatetime
    year: int
    raw: str
    posted_by: str
    received_at: AwareDatetime
    # The intake's Ed25519 signature of (raw, posted_by, received_at) in base64, or the event's
    # proof in a signed batch (`m2:...`, or `m1:...` written before it: engine/merkle.py; ""
    # unsigned), and the hash chain of the partition's log by `seq` (engine/chain.py).
    signature: str = ""
    digest: str = ""
    chain: str = ""


class ChainHead(BaseModel):
    """A signed head of a hash chain (engine/chain.py): chain `chain` of `key` ("UNIT/YEAR" for
    the ledger, the partition for the event log) ends, through the row with `through_seq`, in
    `head`; `signature` is Ed25519 over `engine.chain.head_message`. `signed_at` is the time of
    the newest row it covers (the entry's effective time, the event's receipt time), so a head
    signed again is the same row (docs/audit.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: Literal["ledger", "events"]
    key: str
    through_seq: int
    head: str
    signature: str
    signed_at: AwareDatetime


def trusted(cls: type[_M], values: dict[str, Any]) -> _M:
    """Build a model from values the engine computed itself, skipping validation.

    `model_construct` costs ~12 µs (defaults, aliases, field-set bookkeeping); the engine emits an
    entry for most events, so it uses this ~1 µs path. Every field must be present.

    The models of a frozen class share one set of their field names (`_fields_set`): pydantic
    changes a model's set only when a field is assigned, which a frozen model refuses first, and
    `model_copy` copies it before adding to it. A set per model was 0.2 µs and an object for the
    cyclic collector to track (and scan) as long as the model lives.
    """
    fields = _FIELDS_SETS.get(cls)
    if fields is None:
        fields = _fields_set(cls)
    model = _new(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(values) if len(values) != len(fields) else fields)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def _fields_set(cls: type[BaseModel]) -> set[str]:
    """The field names a frozen class's models share, or an empty set for a class that is not
    frozen (whose models each get a set of their own: no model has no fields)."""
    fields = set(cls.model_fields) if cls.model_config.get("frozen") else set()
    _FIELDS_SETS[cls] = fields
    return fields


_FIELDS_SETS: dict[type[BaseModel], set[str]] = {}


def whole(cls: type[_M]) -> Callable[[dict[str, Any]], _M]:
    """`trusted` for values holding exactly the fields of `cls` (every field, no other key), as
    the engine's entries and deadline states do. Their fields set is one set, made once and
    shared: a set of 19 names is a 1 KiB table, which building per entry cost a fifth of the
    entry's time and most of its memory. Sharing is safe because nothing changes it in place:
    the models are frozen, and pydantic copies it before it adds to it (`model_copy`). It is
    the same set `trusted` gives the class's models (`_fields_set`)."""
    if not cls.model_config.get("frozen"):
        raise TypeError(f"{cls.__name__} is not frozen: its models cannot share a fields set")
    every = _FIELDS_SETS.get(cls) or _fields_set(cls)

    def make(values: dict[str, Any]) -> _M:
        model = _new(cls)
        _set(model, "__dict__", values)
        _set(model, "__pydantic_fields_set__", every)
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model

    return make


_new = object.__new__  # BaseModel has no __new__ of its own
_set = object.__setattr__
trusted_entry = whole(LedgerEntry)
trusted_state = whole(DeadlineState)
trusted_seen = whole(EntrySeen)
