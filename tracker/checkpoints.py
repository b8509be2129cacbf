"""Resuming a writer from its store's checkpoint, and writing one (sinks/checkpoint.py).

A checkpoint that is not to be trusted is never an error: the writer says why in one line on
stderr and replays the whole event log, as it did before checkpoints (docs/ingest.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from config.signing import Signer
from engine import Engine, WorkCalendar
from engine.snapshot import SnapshotError, gc_paused, restore, streamed
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks import checkpoint
from sinks.base import Store

Warn = Callable[[str], None]


def warn_stderr(message: str) -> None:
    print(f"tracker: {message}", file=sys.stderr)


@dataclass(frozen=True, slots=True)
class Resumed:
    engine: Engine
    seq: int  # the partition's last event the engine has applied
    head: str  # its chain value


def resume(
    store: Store,
    partition: int,
    signer: Signer,
    config: tuple[Registry, Mapping[str, Rulebook], WorkCalendar],
    warn: Warn = warn_stderr,
) -> Resumed | None:
    """The engine as the partition's checkpoint left it, if the checkpoint is to be trusted;
    else None (and, when there is one, a warning saying why it is not used)."""
    with gc_paused():  # the JSON of a big state: engine/snapshot.py says why
        found = checkpoint.trusted(store, partition, signer.verifier)
    if found is None:
        return None
    if isinstance(found, str):
        warn(f"{found}: not used; replaying the whole event log")
        return None
    try:
        engine = restore(found.engine_state, *config)
    except SnapshotError as exc:
        warn(
            f"the checkpoint through seq {found.through_seq} cannot be restored ({exc}): "
            "not used; replaying the whole event log"
        )
        return None
    return Resumed(engine, found.through_seq, found.head)


def save(
    store: Store,
    partition: int,
    signer: Signer,
    engine: Engine,
    seq: int,
    head: str | Callable[[], str],
) -> checkpoint.Checkpoint:
    """Checkpoint the engine, which has applied the partition's events through `seq` and whose
    outputs are stored (the caller wrote them). `head`, the chain value of the event at `seq`,
    may be asked for: it is wanted only once the state's objects are numbered."""
    with gc_paused():
        # the state's rows made and encoded a slice at a time, its text streamed to the store
        # in parts: neither is ever whole (engine/snapshot.py `streamed`, sinks/checkpoint.py)
        state = streamed(engine)
        if not isinstance(head, str):
            head = head()
        return checkpoint.write(store, signer, partition, seq, head, state, datetime.now(UTC))
