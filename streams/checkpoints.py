"""The batch worker's checkpoints (issue 12 item 4; docs/streaming.md "Checkpoints").

Per input partition, the engine's state after the partition's records through a logged event,
signed with the worker's key and kept in the store's `checkpoints` table exactly as `tracker
ingest` keeps its own (sinks/checkpoint.py; in Kafka the event log's seq is the input offset).
A worker that takes a partition (start, restart, rebalance) then replays only the records after
the checkpoint instead of the partition from offset 0, so its start costs the same on a store of
50k events as on one of 1M.

A checkpoint is trusted only by the rules `tracker ingest` applies (sinks/checkpoint.py
`trusted`: the signature verifies with this worker's key, the event log holds the event at its
seq with its chain value, the commit mark reaches it; engine/snapshot.py `restore`: the same
registry, rulebooks and calendar). Otherwise one warning line says why and the partition is
replayed from offset 0, as before checkpoints.

Written (after the rows it covers are stored and the batch's offsets committed):
- every `every_records` records applied to a partition (`tracker worker --checkpoint-every`), at
  the end of a batch;
- when the partition is revoked, and when the worker stops cleanly, if every record its engine
  applied is stored.
A checkpoint is only a shortcut: a missing or stale one costs a longer replay, never a row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine import Engine
from engine.snapshot import SnapshotError, gc_paused, restore, streamed
from sinks import checkpoint
from sinks.base import Store
from streams.partition import PartitionState, Resume
from streams.settings import Config, WorkerSettings
from streams.sink_agent import StoreThread

log = logging.getLogger(__name__)


@dataclass
class WorkerCheckpoints:
    store: StoreThread
    config: Config
    every_records: int
    saved: dict[int, int] = field(default_factory=dict)  # per partition, the latest seq known
    applied: dict[int, int] = field(default_factory=dict)  # records applied since it
    stored: dict[int, int] = field(default_factory=dict)  # offsets whose rows this worker stored
    written: int = 0
    resumed: int = 0

    async def resume(self, partition: int, before: int) -> Resume | None:
        """The partition's checkpoint as a rebuild's start, if it is trusted and lies before
        offset `before`; else None (and a warning when one is there but not trusted)."""
        signer = self.config.signer
        if signer is None:
            return None
        verifier = signer.verifier

        def load(store: Store) -> checkpoint.Trusted | str | None:
            with gc_paused():  # the JSON of a big state: engine/snapshot.py says why
                return checkpoint.trusted(store, partition, verifier)

        try:
            found = await self.store.call(load)
        except Exception as exc:  # the store is not readable now: a replay needs only Kafka
            log.warning(
                "partition %d: reading its checkpoint failed (%s); replaying", partition, exc
            )
            return None
        if found is None:
            return None
        if isinstance(found, str):
            log.warning("partition %d: %s: not used; replaying from offset 0", partition, found)
            return None
        if found.through_seq >= before:
            # A redelivery of records the checkpoint already covers (the offsets of the batch
            # it was made after were not committed): the state before them is needed.
            return None
        config = (self.config.registry, self.config.rulebooks, self.config.calendar)
        try:
            first = [restore(found.engine_state, *config)]
        except SnapshotError as exc:
            log.warning(
                "partition %d: the checkpoint through seq %d cannot be restored (%s): not used; "
                "replaying from offset 0",
                partition,
                found.through_seq,
                exc,
            )
            return None
        state = found.engine_state

        def engine() -> Engine:  # the first call gets the engine checked above
            return first.pop() if first else restore(state, *config)

        self.saved[partition], self.applied[partition] = found.through_seq, 0
        self.resumed += 1
        return Resume(found.through_seq, found.head, engine)

    def count(self, partition: int, records: int) -> None:
        self.applied[partition] = self.applied.get(partition, 0) + records

    def take(self, state: PartitionState, *, now: bool = False) -> checkpoint.Prepared | None:
        """The state's checkpoint, made now (the engine changes with the next batch), if one is
        due: `every_records` applied since the last (`now`: at a revoke or a stop, any number),
        and not one of that position written already. Its position is the partition's last
        logged event: the records after it that were not logged (dead letters, duplicates,
        blanks) left the engine as it was (engine/core.py `apply`: a rejected or duplicate
        event changes nothing; a record failing halfway is rebuilt away), so the engine now is
        the engine there."""
        signer, p = self.config.signer, state.partition
        if signer is None or state.tainted or state.logged < 1:
            return None
        if state.logged <= self.saved.get(p, 0):
            return None
        if now:
            if state.offset > self.stored.get(p, -1):
                return None  # applied records whose rows are not stored: not a position to keep
        elif self.applied.get(p, 0) < self.every_records:
            return None
        with gc_paused():
            made = checkpoint.make(
                signer, p, state.logged, state.head, streamed(state.engine), datetime.now(UTC)
            )
        self.saved[p], self.applied[p] = state.logged, 0
        return made

    def note_stored(self, partition: int, offset: int) -> None:
        if offset > self.stored.get(partition, -1):
            self.stored[partition] = offset

    async def save(self, made: list[checkpoint.Prepared]) -> None:
        """Store them (after the rows they cover). A failure costs only a longer replay."""
        for cp in made:

            def write(store: Store, cp: checkpoint.Prepared = cp) -> None:
                checkpoint.store_made(store, cp)

            try:
                await self.store.call(write)
            except Exception as exc:
                log.warning(
                    "partition %d: writing its checkpoint through seq %d failed: %s",
                    cp.partition,
                    cp.through_seq,
                    exc,
                )
                continue
            self.written += 1

    def forget(self, partitions: set[int]) -> None:
        for p in partitions:
            self.applied.pop(p, None)
            self.saved.pop(p, None)  # another worker may write a later one meanwhile


def worker_checkpoints(settings: WorkerSettings, store: StoreThread) -> WorkerCheckpoints | None:
    """The batch worker's checkpoints; None without a signing key. `checkpoint_every` 0: only at
    a revoke and a stop."""
    config = settings.engine_config
    if config.signer is None:
        return None
    return WorkerCheckpoints(store, config, settings.checkpoint_every or 2**62)
