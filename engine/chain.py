"""Hash chains of the ledger and of the event log (issue 11: tamper evidence). Pure: hashlib only.

Each row carries `digest`, the SHA-256 of its canonical form, and `chain`, the SHA-256 of the
previous row's `chain` followed by its own `digest` (the first row of a chain follows ""). A
ledger chain is one (unit, year) in entry `seq` order: the order the engine emitted them, which
the store reads back by `seq`. The event log is chained per partition in `seq` order, the order
of the write-ahead log and of its commit marks (docs/audit.md says why).

The canonical form is the row's fields in a fixed order, each written as its length in
characters, a colon and its text (None: "~"; a list: its items so written), so that no field can
run into the next whatever text it holds; in the forms every store gives back: points as plain
decimals without trailing zeros ("-0" is "0"), instants as ISO 8601 at +08:00 with milliseconds
(the store keeps milliseconds), booleans as 1 and 0. (JSON would do as well and costs four
times as much: the engine hashes every entry it emits.) The engine computes a ledger entry's
hashes when it emits the entry, so a replay of the same events gives the same hashes, whichever
path wrote them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.clock import SHANGHAI

GENESIS = ""  # what the first row of a chain follows
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # signed messages
_string = json.encoder.encode_basestring  # what `_dumps` writes a str as (ensure_ascii=False)

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
    """A points value as plain decimal text without trailing zeros ("-0" and "0.00" are "0")."""
    if not value:
        return "0"
    text = str(value)
    if "E" in text or "e" in text:
        return format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@functools.lru_cache(maxsize=4096)
def instant(at: datetime) -> str:
    """An instant's text in the canonical forms and signed messages: at +08:00, to the
    millisecond (`instant_field` memoises it for the entries of one event)."""
    if at.tzinfo is not SHANGHAI:
        at = at.astimezone(SHANGHAI)
    return _local_text(at)


# `isoformat` of an instant in +08:00 from its parts: the day's text made once per day, the
# time's from tables (a third of the C call's time, which parses its keyword and formats with a
# format string; tests/unit/test_chains.py and test_snapshot_rows.py compare the two).
_DAY_TEXT: dict[int, str] = {}
_HOUR_MINUTE = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECOND = tuple(f"{s:02d}." for s in range(60))
_MILLI = tuple(f"{ms:03d}+08:00" for ms in range(1000))


def minute_text(at: datetime) -> str:
    """`at.isoformat()` up to its minute and the colon after it (`2018-03-01T10:00:`)."""
    day = _DAY_TEXT.get(at.toordinal())
    if day is None:
        if len(_DAY_TEXT) >= 8192:
            _DAY_TEXT.clear()
        day = _DAY_TEXT[at.toordinal()] = f"{at.date().isoformat()}T"
    return day + _HOUR_MINUTE[at.hour * 60 + at.minute]


def _local_text(at: datetime) -> str:
    """`at.isoformat(timespec="milliseconds")` of an instant whose zone is SHANGHAI."""
    return f"{minute_text(at)}{_SECOND[at.second]}{_MILLI[at.microsecond // 1000]}"


# `instant` of an instant whose zone is SHANGHAI already, without the memo: for instants that
# seldom repeat (each event's own time, made once a row), where `instant`'s cache only misses.
local_instant = _local_text


def _text(value: str | None) -> str:
    """A field that cannot run into the next: its length, a colon, the text (None: "~")."""
    return "~" if value is None else f"{len(value)}:{value}"


def canonical(values: Mapping[str, Any], fields: tuple[str, ...]) -> bytes:
    """The canonical form of `fields` of a row: each field as `_text` of its text form."""
    out = []
    for name in fields:
        value = values[name]
        if isinstance(value, Decimal):
            value = points(value)
        elif isinstance(value, datetime):
            value = instant(value)
        elif isinstance(value, tuple | list):
            value = "".join(map(_text, value))
        elif isinstance(value, bool):
            value = "1" if value else "0"
        elif value is not None and not isinstance(value, str):
            value = str(value)
        out.append(_text(value))
    return "".join(out).encode("utf-8")


def entry_digest(v: Mapping[str, Any]) -> str:
    """The digest of a ledger entry's fields (a dict or a model's `__dict__`): `canonical(v,
    LEDGER_FIELDS)`, spelled out because the engine runs it for every entry it emits."""
    ids = "".join(map(_text, v["event_ids"]))
    entry_id, unit, rulebook, indicator = v["entry_id"], v["unit"], v["rulebook"], v["indicator"]
    item, rule, key, source = v["item"], v["rule"], v["count_key"], v["source_unit"]
    seq, year = str(v["seq"]), str(v["year"])
    requested, applied = points(v["requested"]), points(v["applied"])
    at, reason = instant(v["effective_at"]), v["reason"]
    form = (
        f"{len(entry_id)}:{entry_id}{len(seq)}:{seq}{len(unit)}:{unit}{len(year)}:{year}"
        f"{len(rulebook)}:{rulebook}{len(indicator)}:{indicator}{len(item)}:{item}"
        f"{len(rule)}:{rule}{len(key)}:{key}{len(source)}:{source}{len(ids)}:{ids}"
        f"{len(requested)}:{requested}{len(applied)}:{applied}"
        f"1:{'1' if v['capped'] else '0'}{_text(v['reverses'])}{len(at)}:{at}"
        f"{len(reason)}:{reason}"
    )
    return hashlib.sha256(form.encode("utf-8")).hexdigest()


def fixed_fields(unit: str, year: int, rulebook: str, indicator: str, item: str, rule: str) -> str:
    """The fields of a ledger entry's canonical form that one rule of one assessment shares,
    from `unit` to `rule` (they follow each other): made once per rule and assessment."""
    return "".join(map(_text, (unit, str(year), rulebook, indicator, item, rule)))


_POINT_FIELDS: dict[Decimal, str] = {}  # a ledger has few distinct amounts


def points_field(value: Decimal) -> str:
    """`points(value)` as a field of the canonical form. Memoised by value, which is exact:
    `points` gives equal values (0.5 and 0.50, 0 and -0) the same text."""
    field = _POINT_FIELDS.get(value)
    if field is None:
        if len(_POINT_FIELDS) >= 4096:
            _POINT_FIELDS.clear()
        field = _POINT_FIELDS[value] = _text(points(value))
    return field


# the last instant made a field, and its field
_LAST_INSTANT: list[tuple[datetime | None, str]] = [(None, "")]


def instant_field(at: datetime) -> str:
    """`instant(at)` as a field of the canonical form. Memoised for the last instant only (by
    identity): an event's entries share its instant, and nearly every event has its own, so a
    larger cache missed almost always and cost more than it saved."""
    seen, field = _LAST_INSTANT[0]
    if at is seen:
        return field
    local = at if at.tzinfo is SHANGHAI else at.astimezone(SHANGHAI)
    # `_local_text(local)`, spelled out: this runs for nearly every entry (one frame fewer)
    text = f"{minute_text(local)}{_SECOND[local.second]}{_MILLI[local.microsecond // 1000]}"
    field = f"{len(text)}:{text}"
    _LAST_INSTANT[0] = (at, field)
    return field


def ledger_digest(
    entry_id: str,
    seq: int,
    fixed: str,
    count_key: str,
    source_unit: str,
    event_ids: tuple[str, ...],
    requested: Decimal,
    applied: Decimal,
    capped: bool,
    reverses: str | None,
    effective_at: datetime,
    reason: str,
) -> str:
    """`entry_digest` of the entry these fields make, `fixed` being its `fixed_fields`: what
    the engine runs for every entry it emits, with what repeats between entries made once.
    (An entry capped at 0 has the same form spelled out in `engine.caps.Ledger.count`.)"""
    if len(event_ids) == 1:
        ids = f"{len(event_ids[0])}:{event_ids[0]}"
    else:
        ids = "".join(map(_text, event_ids))
    seq_text = str(seq)
    form = (
        f"{len(entry_id)}:{entry_id}{len(seq_text)}:{seq_text}{fixed}"
        f"{len(count_key)}:{count_key}{len(source_unit)}:{source_unit}{len(ids)}:{ids}"
        f"{points_field(requested)}{points_field(applied)}{'1:1' if capped else '1:0'}"
        f"{'~' if reverses is None else f'{len(reverses)}:{reverses}'}"
        f"{instant_field(effective_at)}{len(reason)}:{reason}"
    )
    return hashlib.sha256(form.encode("utf-8")).hexdigest()


def event_digest(v: Mapping[str, Any]) -> str:
    """The digest of an event-log row's fields: `canonical(v, EVENT_FIELDS)`, spelled out
    because every accepted event runs it (canonical's loop was ~12% of ingest). A row whose
    fields are not of the schema's types (a None, a bool, a float) takes canonical's own loop,
    so the bytes are canonical's whatever the row holds (the audit hashes the store's rows)."""
    event_id, partition, seq, unit = v["event_id"], v["partition"], v["seq"], v["unit"]
    kind, at, year, raw = v["type"], v["at"], v["year"], v["raw"]
    posted_by, received_at, signature = v["posted_by"], v["received_at"], v["signature"]
    if (
        type(partition) is not int
        or type(seq) is not int
        or type(year) is not int
        or type(event_id) is not str
        or type(unit) is not str
        or type(kind) is not str
        or type(raw) is not str
        or type(posted_by) is not str
        or type(signature) is not str
        or not isinstance(at, datetime)
        or not isinstance(received_at, datetime)
    ):
        return hashlib.sha256(canonical(v, EVENT_FIELDS)).hexdigest()
    return event_form_digest(
        event_id,
        partition,
        seq,
        unit,
        kind,
        instant(at),
        year,
        raw,
        posted_by,
        instant(received_at),
        signature,
    )


def event_form_digest(
    event_id: str,
    partition: int,
    seq: int,
    unit: str,
    kind: str,
    at_text: str,
    year: int,
    raw: str,
    posted_by: str,
    received_text: str,
    signature: str,
) -> str:
    """`event_digest` of a row of the schema's types whose instants are given as their
    `instant` text: what a writer runs for each row it makes, the receipt's text made once for
    both the signed message and the digest (engine/step.py). The one spelling of the form."""
    part, seq_text, year_text = str(partition), str(seq), str(year)
    form = (
        f"{len(event_id)}:{event_id}{len(part)}:{part}{len(seq_text)}:{seq_text}"
        f"{len(unit)}:{unit}{len(kind)}:{kind}{len(at_text)}:{at_text}"
        f"{len(year_text)}:{year_text}{len(raw)}:{raw}{len(posted_by)}:{posted_by}"
        f"{len(received_text)}:{received_text}{len(signature)}:{signature}"
    )
    return hashlib.sha256(form.encode("utf-8")).hexdigest()


def link(previous: str, digest: str) -> str:
    """The chain value of a row with `digest` following a row whose chain value is `previous`."""
    return hashlib.sha256(f"{previous}{digest}".encode("ascii")).hexdigest()


def event_message(raw: str, posted_by: str, received_at: datetime) -> bytes:
    """What the intake signs of an event: its body as the event log keeps it (the stripped
    line), who posted it and when it was received, in the canonical form above. The JSON of
    `_dumps(["tracker-event", raw, posted_by, instant])` spelled out with the encoder's own
    string function (the same bytes): every event is signed, and the encoder's set-up per call
    cost four times the strings' encoding."""
    return event_message_text(raw, posted_by, instant(received_at))


def event_message_text(raw: str, posted_by: str, received_text: str) -> bytes:
    """`event_message` with the receipt given as its `instant` text (see `event_form_digest`)."""
    return (
        f'["tracker-event",{_string(raw)},{_string(posted_by)},{_string(received_text)}]'.encode()
    )


def batch_message(root: str, size: int) -> bytes:
    """What the intake signs of a batch of events: the hex root of the Merkle tree of their
    `event_message`s (engine/merkle.py) and how many leaves it has. Its own first word keeps a
    signed batch from passing for a signed event or head, and the other way round."""
    return _dumps(["tracker-batch", root, size]).encode("utf-8")


def head_message(chain: str, key: str, through_seq: int, head: str) -> bytes:
    """What a signed chain head says: chain `chain` ("ledger" or "events") of `key` ("UNIT/YEAR"
    or the partition), through the row with `through_seq`, ends in `head`."""
    return _dumps(["tracker-head", chain, key, through_seq, head]).encode("utf-8")


def ledger_key(unit: str, year: int) -> str:
    return f"{unit}/{year}"
