"""Views made for the Grafana dashboards (dashboards/*.json), in the `{db}` format of sinks/ddl.py.

They keep the panel SQL short and, above all, keep panels off the raw event log: the event clock
comes from a tiny aggregate kept up to date on insert instead of `max(at)` over every event.
Row policies (tracker/access.py) sit on the base tables, so these views inherit them.
"""

from __future__ import annotations

VIEWS: dict[str, str] = {
    # The event-time clock (spec 5.8: the watermark is the largest `at` seen, ticks included).
    # POPULATE fills it once from an existing store; later inserts into `events` keep it current.
    "event_clock_mv": """
        CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.event_clock_mv
        ENGINE = AggregatingMergeTree ORDER BY partition POPULATE AS
        SELECT partition, maxState(at) AS watermark FROM {db}.events GROUP BY partition""",
    # Before the first event the clock falls back to the wall clock, so "time left" is defined.
    "event_clock": """
        CREATE VIEW IF NOT EXISTS {db}.event_clock AS
        SELECT if(count() = 0, now64(3, 'Asia/Shanghai'), maxMerge(watermark)) AS now
        FROM {db}.event_clock_mv""",
    # Deadlines with the time left on the event clock: what `tracker deadlines` prints. `due`
    # judges; `notice_due` is the due the notice carried (replaced on open to gain that column).
    "deadlines_now": """
        CREATE OR REPLACE VIEW {db}.deadlines_now AS
        SELECT d.unit AS unit, d.kind AS kind, d.ref AS ref, d.year AS year,
               d.event_id AS event_id, d.noticed_at AS noticed_at, d.due AS due,
               d.notice_due AS notice_due, d.status AS status, d.feedback_at AS feedback_at,
               d.updated_at AS updated_at,
               c.now AS clock, dateDiff('second', c.now, d.due) AS seconds_left
        FROM {db}.deadlines AS d FINAL CROSS JOIN {db}.event_clock AS c""",
    # Every ledger entry with the clause it cites, its event type and a readable state.
    "ledger_clauses": """
        CREATE VIEW IF NOT EXISTS {db}.ledger_clauses AS
        SELECT l.entry_id AS entry_id, l.seq AS seq, l.unit AS unit, l.year AS year,
               l.rulebook AS rulebook, l.indicator AS indicator, l.item AS item,
               l.rule AS rule, splitByChar('[', l.rule)[1] AS event_type,
               l.count_key AS count_key, l.source_unit AS source_unit,
               l.event_ids AS event_ids, l.requested AS requested, l.applied AS applied,
               l.capped AS capped, l.reverses AS reverses, l.effective_at AS effective_at,
               l.reason AS reason,
               multiIf(l.reverses IS NOT NULL, 'reversal', l.capped, 'capped', 'deduction')
                   AS state,
               i.clause AS clause
        FROM {db}.ledger AS l FINAL
        LEFT JOIN (SELECT rulebook, indicator, item, clause FROM {db}.items FINAL) AS i
            ON i.rulebook = l.rulebook AND i.indicator = l.indicator AND i.item = l.item""",
    # As of an instant (sinks/as_of.py), for the audit dashboard's time range end: every ledger
    # entry with the event-time instant it was seen at (`seen_after`: only strictly after it).
    "ledger_seen_v": """
        CREATE VIEW IF NOT EXISTS {db}.ledger_seen_v AS
        SELECT l.entry_id AS entry_id, l.unit AS unit, l.year AS year, l.indicator AS indicator,
               l.applied AS applied, l.reverses AS reverses,
               if(s.entry_id = '', l.effective_at, s.seen_at) AS seen_at,
               s.entry_id != '' AND s.after AS seen_after
        FROM {db}.ledger AS l FINAL
        LEFT JOIN (SELECT entry_id, seen_at, after FROM {db}.ledger_seen FINAL) AS s
            ON s.entry_id = l.entry_id""",
    # Replaced on open, as deadlines_v: `*` must see the columns added since (posted_by).
    "dead_letters_v": "CREATE OR REPLACE VIEW {db}.dead_letters_v AS "
    "SELECT * FROM {db}.dead_letters FINAL",
}


def statements(database: str) -> list[str]:
    """The views for one database, in dependency order (dicts keep insertion order)."""
    return [sql.format(db=database) for sql in VIEWS.values()]
