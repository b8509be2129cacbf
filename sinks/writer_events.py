"""The event log's rows of `tracker ingest`'s writes, made in its writer process.

The CLI's engine thread is its bottleneck, and the writer process (sinks/writer_process.py) was
about half idle. Making an accepted event's row is work that needs nothing of the engine: the
intake signature of the write's unsigned events (a Merkle tree and an Ed25519 signature per 16),
the row's digest and chain value, the row itself, and the signed head of the event chain. So the
CLI sends the fields the rows are made of (`sinks.base.UnmadeEvents`) and the writer makes and
stores them with the very functions the CLI used (engine/step.py `logged_rows`, sinks/heads.py
`sign_heads`, sinks/clickhouse_totals.py `unit_year_rows`): the same rows, byte for byte, in the
same crash-safe place of the write (after the dead letters, before the ledger). The event chain's
head stays with the writer, which the CLI asks for when it needs it (a checkpoint).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import partial
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError

from config.intake_signatures import sign_messages
from config.signing import Signer
from engine.clock import SHANGHAI
from engine.step import EventFields, logged_rows
from sinks.clickhouse_columns import as_columns
from sinks.clickhouse_rows import EVENT_COLS, EVENT_ROW, HEAD_COLS, HEAD_ROW
from sinks.clickhouse_totals import UNIT_YEAR_COLS, unit_year_rows
from sinks.errors import StoreError
from sinks.heads import sign_heads
from sinks.store_open import insert_failed
from sinks.writer_process import column_from_piece, column_piece


def shanghai() -> timezone:
    """engine.clock's SHANGHAI: what an instant's zone is unpickled as (`instants_piece`)."""
    return SHANGHAI


def _by_name(zone: Any) -> Any:
    # SHANGHAI itself, not a copy of it; any other zone as pickle makes it
    return (shanghai, ()) if zone is SHANGHAI else zone.__reduce__()


_ZONES: dict[type, Any] = {timezone: _by_name}


def instants_piece(column: Sequence[datetime]) -> bytes:
    """A column of instants pickled with engine.clock's SHANGHAI by name: unpickled, an
    instant in it has that very zone object, which the rows' code tells by identity (`local`
    returns such an instant as it is), not a copy of it, which cost a conversion per instant
    (~3% of the writer's time). The zone is pickled once (the pickler's memo)."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _ZONES
    pickler.dump(column)
    return out.getvalue()


# the columns of `EventFields` that are instants (its event's, its receipt's)
INSTANTS = (3, 7)


def event_columns(fields: Sequence[EventFields]) -> list[Any]:
    """The fields of a write's events as the columns sent to the writer process: texts as
    `column_piece` sends them, instants by `instants_piece`."""
    return [
        instants_piece(c) if n in INSTANTS else column_piece(c)
        for n, c in enumerate(zip(*fields, strict=True))
    ]


def fields_of(columns: Sequence[Any]) -> list[EventFields]:
    """The fields `event_columns` sent."""
    return list(
        zip(
            *(column_from_piece(c) for c in columns),
            strict=True,
        )
    )


class EventRows:
    """What the writer process keeps to make the rows: the signing key its CLI sent, the chain
    value each partition's events ended at, and the column types of the three tables."""

    def __init__(self) -> None:
        self.signer: Signer | None = None
        self.heads: dict[tuple[str, int], str] = {}
        self._types: dict[str, Sequence[Any]] = {}

    def take_key(self, raw: bytes) -> None:
        """The signing key's 32 bytes, as the CLI sent them (`Signer.private_raw`)."""
        self.signer = Signer.from_private_raw(raw)

    def make(
        self,
        client: Any,
        db: str,
        partition: int,
        previous: str | None,
        columns: Sequence[Any],
        signed: bool,
    ) -> None:
        """Make and store the rows of the events `event_columns` sent as `columns`."""
        fields = fields_of(columns)
        if previous is None:
            previous = self.heads.get((db, partition))
            if previous is None:
                raise StoreError(
                    f"the store's writer process holds no chain value of partition {partition}"
                )
        signer = self.signer
        if signed and signer is None:
            raise StoreError("the store's writer process was sent no signing key")
        sign = partial(sign_messages, signer) if signed and signer is not None else None
        rows = logged_rows(fields, partition, previous, sign)
        if not rows:
            return
        self._insert(client, db, "events", EVENT_COLS, list(map(EVENT_ROW, rows)))
        self._insert(client, db, "unit_years", UNIT_YEAR_COLS, unit_year_rows(rows))
        if sign is not None and signer is not None:
            heads = sign_heads(signer, rows, ())
            self._insert(client, db, "chain_heads", HEAD_COLS, list(map(HEAD_ROW, heads)))
        self.heads[(db, partition)] = rows[-1].chain

    def _insert(
        self, client: Any, db: str, table: str, columns: list[str], rows: list[Any]
    ) -> None:
        """As `ClickHouseStore._insert` inserts (the columns made once, DateTime64 as ticks)."""
        if not rows:
            return
        name = f"{db}.{table}"
        types = self._types.get(name)
        if types is None:
            types = self._types[name] = client.create_insert_context(name, columns).column_types
        data = as_columns(rows, types)
        try:
            client.insert(
                name, data, column_names=columns, column_types=types, column_oriented=True
            )
        except ClickHouseError as exc:
            raise insert_failed(table, exc) from None
        finally:
            data.clear()  # (see writer_child.serve)
