"""ClickHouse tables of the store. Replacing engines keyed by deterministic ids make every write
idempotent: a row written twice (re-ingest, redelivery after a crash) collapses to one.
Readers use FINAL (or the views) so that a not-yet-merged duplicate is never counted twice."""

from __future__ import annotations

from sinks.dashboard_views import VIEWS as DASHBOARD_VIEWS

TS = "DateTime64(3, 'Asia/Shanghai')"
POINTS = "Decimal(18, 4)"
# The envelope (schemas/envelope.py) of logged events and dead letters. The defaults are what a
# row from before envelopes reads as: posted by no one (UNKNOWN_POSTER), received at an unknown
# time (UNKNOWN_RECEIPT, the epoch); every write names both.
ENVELOPE_DEFAULTS = {"posted_by": "''", "received_at": "toDateTime64(0, 3, 'Asia/Shanghai')"}
# Tamper evidence (issue 11, engine/chain.py): "" is what a row from before hash chains reads as.
CHAIN_DEFAULTS = {"signature": "''", "digest": "''", "chain": "''"}
POSTED_BY = f"posted_by String DEFAULT {ENVELOPE_DEFAULTS['posted_by']}"
RECEIVED_AT = f"received_at {TS} DEFAULT {ENVELOPE_DEFAULTS['received_at']}"

# The event log is keyed by partition and event id: a tick goes to every partition and is logged
# in each, and each partition's hash chain needs its own copy (docs/audit.md). A store made
# before issue 11 keeps its key (event_id alone: one copy of such a tick).
TABLES: dict[str, str] = {
    "events": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.events (
            event_id String, partition UInt16, seq UInt64, unit String,
            type LowCardinality(String), at {TS}, year UInt16, raw String,
            {POSTED_BY}, {RECEIVED_AT},
            signature String DEFAULT '', digest String DEFAULT '', chain String DEFAULT ''
        ) ENGINE = ReplacingMergeTree ORDER BY (partition, event_id)""",
    "ledger": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.ledger (
            entry_id String, seq UInt64, unit String, year UInt16,
            rulebook LowCardinality(String), indicator LowCardinality(String), item String,
            rule String, count_key String, source_unit String, event_ids Array(String),
            requested {POINTS}, applied {POINTS}, capped Bool, reverses Nullable(String),
            effective_at {TS}, reason String,
            digest String DEFAULT '', chain String DEFAULT ''
        ) ENGINE = ReplacingMergeTree ORDER BY (unit, year, entry_id)""",
    # issue 11, as of an instant (sinks/as_of.py): when the entries not seen at their
    # effective_at entered the ledger, in event time (`after`: only strictly after `seen_at`)
    "ledger_seen": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.ledger_seen (
            entry_id String, unit String, year UInt16, seen_at {TS}, after Bool
        ) ENGINE = ReplacingMergeTree ORDER BY (unit, year, entry_id)""",
    # issue 12, status in flat time (sinks/clickhouse_totals.py): the ledger's entries that
    # move points (applied != 0; on a dense stream 99.5% are capped at 0 and do not), keyed as
    # the ledger is, so a rewrite replaces and never adds; and one row (entry_id '', 0) per
    # (unit, year, indicator) with entries, so that the totals have the ledger's keys
    "ledger_points": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.ledger_points (
            unit String, year UInt16, indicator LowCardinality(String), entry_id String,
            applied {POINTS}
        ) ENGINE = ReplacingMergeTree ORDER BY (unit, year, indicator, entry_id)""",
    # ... and the unit-years of the event log, with their first event (min is idempotent: a
    # rewrite of the same events leaves it as it was)
    "unit_years": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.unit_years (
            unit String, year UInt16, first_at SimpleAggregateFunction(min, {TS})
        ) ENGINE = AggregatingMergeTree ORDER BY (unit, year)""",
    # ... and each unit-year's deadlines as status --json writes them, with the highest
    # version of the deadlines they were made from (sinks/clickhouse_docs.py)
    "deadline_docs": """
        CREATE TABLE IF NOT EXISTS {db}.deadline_docs (
            unit String, year UInt16, version UInt64, text String
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (unit, year)""",
    # ... and every state each deadline went through (`deadlines` keeps the latest only)
    "deadline_history": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.deadline_history (
            unit String, kind LowCardinality(String), ref String, year UInt16, event_id String,
            noticed_at {TS}, due {TS}, notice_due Nullable({TS}), status LowCardinality(String),
            feedback_at Nullable({TS}), updated_at {TS}, version UInt64
        ) ENGINE = ReplacingMergeTree ORDER BY (unit, kind, ref, version)""",
    # Signed heads of the hash chains (sinks/heads.py): every head any write signed.
    "chain_heads": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.chain_heads (
            chain LowCardinality(String), key String, through_seq UInt64, head String,
            signature String, signed_at {TS}
        ) ENGINE = ReplacingMergeTree ORDER BY (chain, key, through_seq)""",
    "deadlines": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.deadlines (
            unit String, kind LowCardinality(String), ref String, year UInt16, event_id String,
            noticed_at {TS}, due {TS}, notice_due Nullable({TS}), status LowCardinality(String),
            feedback_at Nullable({TS}), updated_at {TS}, version UInt64
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (unit, kind, ref)""",
    "dead_letters": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.dead_letters (
            letter_id String, origin String, raw String, reason String, {POSTED_BY},
            received_at {TS}
        ) ENGINE = ReplacingMergeTree ORDER BY letter_id""",
    # Commit marks of `write` (sinks/base.py): the outputs of every logged event of `partition`
    # up to `through_seq` are stored; restore re-derives those of the events after the last one.
    # Readers take max(through_seq); merges keep one row per partition, so the table stays small.
    "batches": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.batches (
            partition UInt16, through_seq UInt64, events UInt32, written_at {TS}
        ) ENGINE = ReplacingMergeTree(through_seq) ORDER BY partition""",
    # Checkpoints of the engine's state (sinks/checkpoint.py): a partition's state through
    # `through_seq` as signed JSON text. A writer keeps the latest only (it deletes older ones).
    "checkpoints": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.checkpoints (
            partition UInt16, through_seq UInt64, head String, state String CODEC(ZSTD(3)),
            signature String, written_at {TS}
        ) ENGINE = ReplacingMergeTree ORDER BY (partition, through_seq)""",
    # A checkpoint's text in parts (sinks/checkpoint.py), its row naming them by `write`: written
    # a few at a time so that no writer holds a big state's whole text.
    "checkpoint_parts": """
        CREATE TABLE IF NOT EXISTS {db}.checkpoint_parts (
            partition UInt16, through_seq UInt64, write String, part UInt32,
            text String CODEC(ZSTD(3))
        ) ENGINE = ReplacingMergeTree ORDER BY (partition, through_seq, write, part)""",
    "meta": """
        CREATE TABLE IF NOT EXISTS {db}.meta (
            key String, value String, saved_at DateTime64(6)
        ) ENGINE = ReplacingMergeTree(saved_at) ORDER BY key""",
    # Every registry `save_config` stored, with the hash of the one it replaced: an audit trail.
    "registry_changes": """
        CREATE TABLE IF NOT EXISTS {db}.registry_changes (
            changed_at DateTime64(6, 'UTC'), old_hash String, new_hash String, registry String
        ) ENGINE = MergeTree ORDER BY changed_at""",
    "units": """
        CREATE TABLE IF NOT EXISTS {db}.units (
            id String, name String, tier LowCardinality(String), parent Nullable(String),
            root String, saved_at DateTime64(6)
        ) ENGINE = ReplacingMergeTree(saved_at) ORDER BY id""",
    "indicators": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.indicators (
            rulebook LowCardinality(String), year UInt16, tier LowCardinality(String),
            indicator LowCardinality(String), name String, max_points {POINTS},
            saved_at DateTime64(6)
        ) ENGINE = ReplacingMergeTree(saved_at) ORDER BY (rulebook, indicator)""",
    "items": f"""
        CREATE TABLE IF NOT EXISTS {{db}}.items (
            rulebook LowCardinality(String), indicator LowCardinality(String), item String,
            clause String, cap_points Nullable({POINTS}), saved_at DateTime64(6)
        ) ENGINE = ReplacingMergeTree(saved_at) ORDER BY (rulebook, indicator, item)""",
}

# Columns added after a table was first shipped: a store made before them gets them on open.
# (Tables added later, like ledger_seen and deadline_history, come with TABLES' IF NOT EXISTS; a
# store that had events before them is marked as holding no history: sinks/clickhouse_as_of.py.)
MIGRATIONS: list[str] = [
    # contract v2: the due a notice carried, beside the instant that judges it (`due`)
    f"ALTER TABLE {{db}}.deadlines ADD COLUMN IF NOT EXISTS notice_due Nullable({TS}) AFTER due",
    # issue 10: who posted each input and when it was received (the rows before: unknown)
    f"ALTER TABLE {{db}}.events ADD COLUMN IF NOT EXISTS {POSTED_BY} AFTER raw",
    f"ALTER TABLE {{db}}.events ADD COLUMN IF NOT EXISTS {RECEIVED_AT} AFTER posted_by",
    f"ALTER TABLE {{db}}.dead_letters ADD COLUMN IF NOT EXISTS {POSTED_BY} AFTER reason",
    # issue 11: hash chains and intake signatures (the rows before: "", reported by audit verify)
    "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS signature String DEFAULT '' AFTER received_at",
    "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS digest String DEFAULT '' AFTER signature",
    "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS chain String DEFAULT '' AFTER digest",
    "ALTER TABLE {db}.ledger ADD COLUMN IF NOT EXISTS digest String DEFAULT '' AFTER reason",
    "ALTER TABLE {db}.ledger ADD COLUMN IF NOT EXISTS chain String DEFAULT '' AFTER digest",
]

# Views for readers (CLI status, Grafana): deduplicated and aggregated, so no reader needs FINAL.
VIEWS: dict[str, str] = {
    "ledger_v": "CREATE VIEW IF NOT EXISTS {db}.ledger_v AS SELECT * FROM {db}.ledger FINAL",
    # Replaced on open: a view's columns are fixed when it is made, and `*` must see new ones.
    "deadlines_v": "CREATE OR REPLACE VIEW {db}.deadlines_v AS "
    "SELECT * EXCEPT version FROM {db}.deadlines FINAL",
    "indicator_status": """
        CREATE VIEW IF NOT EXISTS {db}.indicator_status AS
        SELECT u.id AS unit, u.name AS unit_name, u.tier AS tier, i.year AS year,
               i.rulebook AS rulebook, i.indicator AS indicator, i.name AS indicator_name,
               i.max_points AS max_points, ifNull(l.deducted, toDecimal64(0, 4)) AS deducted,
               i.max_points - ifNull(l.deducted, toDecimal64(0, 4)) AS remaining
        FROM {db}.units AS u FINAL
        INNER JOIN {db}.indicators AS i FINAL ON i.tier = u.tier
        LEFT JOIN (
            SELECT unit, year, indicator, sum(applied) AS deducted
            FROM {db}.ledger FINAL GROUP BY unit, year, indicator
        ) AS l ON l.unit = u.id AND l.year = i.year AND l.indicator = i.indicator
        SETTINGS join_use_nulls = 1""",
}


def statements(database: str) -> list[str]:
    return [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        *(sql.format(db=database) for sql in TABLES.values()),
        *(sql.format(db=database) for sql in MIGRATIONS),
        *(sql.format(db=database) for sql in VIEWS.values()),
        *(sql.format(db=database) for sql in DASHBOARD_VIEWS.values()),
    ]
