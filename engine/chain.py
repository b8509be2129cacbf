"""Hash chains of the ledger and of the event log (issue 11: tamper evidence). Pure: hashlib only.

Each row carries `digest`, the SHA-256 of its canonical form, and `chain`, the SHA-256 of the
previous row's `chain` followed by its own `digest` (the first row of a chain follows ""). A
ledger chain is one (unit, year) in entry `seq` order: the order the engine emitted them, which
the store reads back by `seq`. The event log is chained per partition in `seq` order, the order
of the write-ahead log and of its commit marks (docs/audit.md says why).

The canonical form is a compact JSON array of the row's fields in a fixed order, in the forms
every store gives back: points as plain decimals without trailing zeros ("-0" is "0"), instants
as ISO 8601 in +08:00 with milliseconds (the store keeps milliseconds). JSON makes it
unambiguous whatever text a field holds. The engine computes a ledger entry's hashes when it
emits the entry, so a replay of the same events gives the same hashes, whichever path wrote them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.clock import local

GENESIS = ""  # what the first row of a chain follows
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# The fields of each canonical form, in order (every field of the row but its hashes).
LEDGER_FIELDS = (
    "entry_id",
    "seq",
    "unit",
    "year",
    "rulebook",
    "indicator",
    "item",
    "rule",
    "count_key",
    "source_unit",
    "event_ids",
    "requested",
    "applied",
    "capped",
    "reverses",
    "effective_at",
    "reason",
)
EVENT_FIELDS = (
    "event_id",
    "partition",
    "seq",
    "unit",
    "type",
    "at",
    "year",
    "raw",
    "posted_by",
    "received_at",
    "signature",
)


def points(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def instant(at: datetime) -> str:
    return local(at).isoformat(timespec="milliseconds")


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return points(value)
    if isinstance(value, datetime):
        return instant(value)
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    return value


def canonical(values: Mapping[str, Any], fields: tuple[str, ...]) -> bytes:
    return _dumps([_canonical(values[f]) for f in fields]).encode("utf-8")


def entry_digest(v: Mapping[str, Any]) -> str:
    """The digest of a ledger entry's fields (a dict or a model's `__dict__`). Spelled out
    rather than `canonical(v, LEDGER_FIELDS)`: the engine runs it for every entry it emits."""
    form = [
        v["entry_id"],
        v["seq"],
        v["unit"],
        v["year"],
        v["rulebook"],
        v["indicator"],
        v["item"],
        v["rule"],
        v["count_key"],
        v["source_unit"],
        list(v["event_ids"]),
        points(v["requested"]),
        points(v["applied"]),
        v["capped"],
        v["reverses"],
        instant(v["effective_at"]),
        v["reason"],
    ]
    return hashlib.sha256(_dumps(form).encode("utf-8")).hexdigest()


def event_digest(v: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(v, EVENT_FIELDS)).hexdigest()


def link(previous: str, digest: str) -> str:
    """The chain value of a row with `digest` following a row whose chain value is `previous`."""
    return hashlib.sha256(f"{previous}{digest}".encode("ascii")).hexdigest()


def event_message(raw: str, posted_by: str, received_at: datetime) -> bytes:
    """What the intake signs of an event: its body as the event log keeps it (the stripped
    line), who posted it and when it was received, in the canonical form above."""
    return _dumps(["tracker-event", raw, posted_by, instant(received_at)]).encode("utf-8")


def head_message(chain: str, key: str, through_seq: int, head: str) -> bytes:
    """What a signed chain head says: chain `chain` ("ledger" or "events") of `key` ("UNIT/YEAR"
    or the partition), through the row with `through_seq`, ends in `head`."""
    return _dumps(["tracker-head", chain, key, through_seq, head]).encode("utf-8")


def ledger_key(unit: str, year: int) -> str:
    return f"{unit}/{year}"
