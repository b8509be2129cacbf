"""Rows of the ClickHouse store's tables and the models they hold: the column lists, the row
builders of the insert path (sinks/clickhouse.py) and the readers' conversions
(sinks/clickhouse_reads.py, clickhouse_as_of.py)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from engine.clock import local
from schemas.ledger import (
    ChainHead,
    DeadLetter,
    DeadlineState,
    EntrySeen,
    LedgerEntry,
    LoggedEvent,
)
from sinks.clickhouse_sql import unit_year_filter as unit_year_filter
from sinks.ddl import CHAIN_DEFAULTS, ENVELOPE_DEFAULTS

LEDGER_COLS = list(LedgerEntry.model_fields)
DEADLINE_COLS = list(DeadlineState.model_fields)
LETTER_COLS = list(DeadLetter.model_fields)
SEEN_COLS = list(EntrySeen.model_fields)
EVENT_COLS = list(LoggedEvent.model_fields)
HEAD_COLS = list(ChainHead.model_fields)
# what a column missing from a store no writer has opened since it was added reads as
OLD_DEFAULTS = {**ENVELOPE_DEFAULTS, **CHAIN_DEFAULTS}


def stored_points(value: Decimal) -> Decimal:
    return value.normalize() if value else Decimal(0)


# attrgetter builds a row tuple in C: the insert path handles every ledger entry and event
EVENT_ROW = operator.attrgetter(*EVENT_COLS)
LEDGER_ROW = operator.attrgetter(*LEDGER_COLS)
DEADLINE_ROW = operator.attrgetter(*DEADLINE_COLS)
LETTER_ROW = operator.attrgetter(*LETTER_COLS)
SEEN_ROW = operator.attrgetter(*SEEN_COLS)
HEAD_ROW = operator.attrgetter(*HEAD_COLS)


def ledger_entry(v: dict[str, Any]) -> LedgerEntry:
    """A ledger row (column -> value) as the entry."""
    v.update(
        event_ids=tuple(v["event_ids"]),
        requested=stored_points(v["requested"]),
        applied=stored_points(v["applied"]),
        effective_at=local(v["effective_at"]),
        capped=bool(v["capped"]),
    )
    return LedgerEntry.model_construct(**v)


def deadline_state(v: dict[str, Any]) -> DeadlineState:
    """A deadlines (or deadline_history) row as the state."""
    for col in ("noticed_at", "due", "notice_due", "updated_at", "feedback_at"):
        if v[col] is not None:
            v[col] = local(v[col])
    return DeadlineState.model_construct(**v)


def logged_event_row(row: Sequence[Any]) -> LoggedEvent:
    values = dict(zip(EVENT_COLS, row, strict=True))
    values["at"] = local(values["at"])
    values["received_at"] = local(values["received_at"])
    return LoggedEvent.model_construct(**values)
