"""Each unit-year's deadlines as `tracker status --json` writes them, kept in the store
(issue 12 item 4): the every-unit status of a 1M-event store then reads ~400 short texts, not
136k deadlines grouped, sorted and formatted by the store (0.3-0.4 s of its ~1.2 s).

The table `deadline_docs` holds, per (unit, year), the JSON text of its deadlines (the
`DeadlineView`s of `build_status`, in its order, joined by ", ") and the highest `version` of the
unit-year's deadlines it was made from. A unit's deadlines all come from one engine (one input
partition: docs/streaming.md), whose one counter numbers every deadline change, so any change to
a unit-year's deadlines raises its highest version: a document whose version is not the
deadlines' highest (read without FINAL, ~10 ms over the whole table) is stale, and a reader
makes that unit-year's text from the deadlines themselves. Freshness is read from the data, not
from a marker, so a writer that stopped before refreshing, or two writers, leave nothing wrong,
only something slower.

A writer refreshes the stale documents (`refresh`) when it opens the store (which also fills them
in a store made before the table), when it saves a checkpoint and when it closes: once per
ingest rather than once per batch. A unit-year whose refs `json.dumps` would escape gets no
document (status writes those with json.dumps). The texts are the store's rows, so untrusted: a
reader uses a document only if it matches the exact form `DOC_FORM` describes (else it is made
again from the deadlines, which are checked as before).

Imports nothing heavy: the light status read (sinks/clickhouse_status.py) builds its queries
from here too.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sinks.clickhouse_sql import KEPT, iso_text
from sinks.errors import StoreError

if TYPE_CHECKING:
    from sinks.clickhouse import ClickHouseStore

DOCS_KEY = "deadline_docs"  # meta key; KEPT once a writer made the table and filled it
STATUSES = ("open", "met", "late", "overdue", "withdrawn")

# A deadline as status shows it: its due as `iso` writes it, and the notice's own due only when
# it differs (schemas.ledger.DeadlineView); in a unit-year by notice time, then ref (the order
# `build_status` sorts by), then kind (the order its input came in, which breaks the last ties).
DUE = iso_text("due")
OWN_DUE = f"if(notice_due IS NULL OR notice_due = due, NULL, {iso_text('notice_due')})"
ORDER = "noticed_at, ref, kind"
BAD_STATUS = f"status NOT IN ({', '.join(repr(s) for s in STATUSES)})"
# what `json.dumps` would escape in a ref (ensure_ascii=False): quote, backslash, C0 controls;
# and bytes that are not UTF-8. A unit-year with such a ref is written by json.dumps instead.
ODD_REF = "NOT isValidUTF8(ref) OR match(ref, '[\\\\x00-\\\\x1f\"\\\\\\\\]')"
# one deadline's JSON, as json.dumps writes {"ref", "due", "status"[, "notice_due"]}
VIEW_JSON = (
    'concat(\'{"ref": "\', ref, \'", "due": "\', due_text, \'", "status": "\', status, '
    "'\"', if(own_due IS NULL, '', concat(', \"notice_due\": \"', assumeNotNull(own_due), "
    "'\"')), '}')"
)
# a unit-year's text: its deadlines' JSON in status order
GROUP_TEXT = (
    "arrayStringConcat(arrayMap(v -> v.4, arraySort(v -> (v.1, v.2, v.3), "
    f"groupArray(({ORDER}, {VIEW_JSON})))), ', ')"
)

# The exact form of a document (RE2): what VIEW_JSON writes, for
# refs that are not ODD_REF, joined by ", ". A document of any other form is not used.
_ISO = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3}000)?\+08:00"
_VIEW = (
    rf'\{{"ref": "[^"\\\x00-\x1f]*", "due": "{_ISO}", "status": "(?:{"|".join(STATUSES)})"'
    rf'(?:, "notice_due": "{_ISO}")?\}}'
)
DOC_FORM = rf"^{_VIEW}(?:, {_VIEW})*$"


def _quoted(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


USABLE = f"isValidUTF8(text) AND match(text, {_quoted(DOC_FORM)})"


def view_source(db: str, where: str) -> str:
    """The latest deadlines (`where`: a `unit_year_filter`), with the columns GROUP_TEXT reads."""
    return (
        f"SELECT unit, year, kind, ref, noticed_at, status, version, {DUE} AS due_text, "
        f"{OWN_DUE} AS own_due FROM {db}.deadlines FINAL {where}"
    )


def highest_versions(db: str, where: str) -> str:
    """Per unit-year with deadlines, the highest version of its deadlines (no FINAL needed)."""
    return f"SELECT unit, year, max(version) AS v FROM {db}.deadlines {where} GROUP BY unit, year"


def usable_docs(db: str, where: str) -> str:
    """Per unit-year with deadlines: its document's text when that is fresh and of the exact
    form, else NULL (a reader makes the text from the deadlines)."""
    return (
        f"SELECT m.unit, m.year, if(d.version = m.v AND {USABLE}, d.text, NULL) "
        f"FROM ({highest_versions(db, where)}) AS m "
        f"LEFT JOIN (SELECT unit, year, version, text FROM {db}.deadline_docs FINAL {where}) AS d "
        "ON d.unit = m.unit AND d.year = m.year SETTINGS join_use_nulls = 1"
    )


def _stale(db: str) -> str:
    return (
        f"SELECT m.unit, m.year FROM ({highest_versions(db, '')}) AS m LEFT ANTI JOIN "
        f"(SELECT unit, year, version FROM {db}.deadline_docs FINAL WHERE {USABLE}) AS d "
        "ON d.unit = m.unit AND d.year = m.year AND d.version = m.v"
    )


def refresh(store: ClickHouseStore) -> None:
    """Make the document of every unit-year whose document is missing, stale or not of the exact
    form (a unit-year with an odd ref or an unknown status gets none). Idempotent: a document
    made again from the same deadlines is the same row."""
    db = store.db
    store._command(
        f"INSERT INTO {db}.deadline_docs (unit, year, version, text) "
        f"SELECT unit, year, max(version), {GROUP_TEXT} "
        f"FROM ({view_source(db, f'WHERE (unit, year) IN ({_stale(db)})')}) GROUP BY unit, year "
        f"HAVING countIf({BAD_STATUS}) = 0 AND countIf({ODD_REF}) = 0"
    )


def refresh_due(store: ClickHouseStore, due: bool) -> bool:
    """Refresh if the store wrote deadlines since it last did (`due`): once per ingest, not per
    batch. Whether it is still due. A failure leaves the documents stale, which readers see
    (they are then only slower), so it is not raised."""
    if due:
        with contextlib.suppress(StoreError):
            refresh(store)
            return False
    return due


def keep_docs(store: ClickHouseStore) -> None:
    """On a writer's open: refresh (in a store made before the table: fill it), then mark the
    store, so that readers use the documents."""
    refresh(store)
    rows = store._query(
        f"SELECT value FROM {store.db}.meta FINAL WHERE key = {{k:String}}", {"k": DOCS_KEY}
    )
    if not rows or rows[0][0] != KEPT:
        store._insert("meta", ["key", "value", "saved_at"], [[DOCS_KEY, KEPT, datetime.now(UTC)]])
