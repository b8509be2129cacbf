"""Checkpoints: the engine's state through a position of the event log, so that a writer
continues a big store without replaying all of it (issue 12 item 4; docs/ingest.md).

A checkpoint holds, for one partition, the JSON text of the writer's state (engine/snapshot.py,
plain data, never pickled) through the event of seq `through_seq`, whose chain value is `head`
(engine/chain.py). The writer signs it with its Ed25519 key (config/signing.py) as it signs chain
heads (sinks/heads.py): the signature covers the partition, the position, the head and the
SHA-256 of the text. It is written only after the rows of every event it covers are stored.

A reader trusts one only when all of this holds (`trusted`); otherwise it says why, and the
caller replays the whole log instead:
- the signature verifies with the reader's own key (a checkpoint another key wrote, or none
  signed, is not trusted: the store's rows are untrusted input);
- the event log holds the event at `through_seq` with that chain value, so the log it was made
  from is the log there now, up to that event (the chain covers every event before it);
- the outputs of the events up to `through_seq` are stored (the commit mark reaches it);
- the text is JSON of the expected shape. (The engine's own reading checks the rest.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from config.signing import Signer, Verifier
from engine.chain import head_message

FORMAT = "tracker-checkpoint/1"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class Checkpoint:
    partition: int
    through_seq: int
    head: str  # the chain value of the partition's event at `through_seq`
    state: str  # JSON text: {"format", "partition", "through_seq", "head", "engine"}
    signature: str
    written_at: datetime


class CheckpointStore(Protocol):
    """What `trusted` reads of a store (sinks/base.py StoreWriter has it all)."""

    def load_checkpoint(self, partition: int = 0) -> Checkpoint | None: ...

    def committed_seq(self, partition: int = 0) -> int: ...

    def logged_events_after(self, partition: int, seq: int, limit: int) -> list[Any]: ...


def message(partition: int, through_seq: int, head: str, state: str) -> bytes:
    """What the writer signs: the head message of the event chain through the position (as a
    chain head says it), and the SHA-256 of the state's text."""
    body = hashlib.sha256(state.encode("utf-8")).hexdigest()
    covered = head_message("events", str(partition), through_seq, head).decode("utf-8")
    return _dumps(["tracker-checkpoint", covered, body]).encode("utf-8")


def make(
    signer: Signer,
    partition: int,
    through_seq: int,
    head: str,
    engine_state: dict[str, Any],
    written_at: datetime,
) -> Checkpoint:
    state = _dumps(
        {
            "format": FORMAT,
            "partition": partition,
            "through_seq": through_seq,
            "head": head,
            "engine": engine_state,
        }
    )
    signature = signer.sign(message(partition, through_seq, head, state))
    return Checkpoint(partition, through_seq, head, state, signature, written_at)


@dataclass(frozen=True, slots=True)
class Trusted:
    through_seq: int
    head: str
    engine_state: dict[str, Any]  # for engine.snapshot.restore, which checks it field by field


def trusted(store: CheckpointStore, partition: int, verifier: Verifier) -> Trusted | str | None:
    """The partition's latest checkpoint if it is to be trusted (module docstring); else why
    not (a sentence), or None when there is none."""
    found = store.load_checkpoint(partition)
    if found is None:
        return None
    cp, at = found, f"the checkpoint through seq {found.through_seq}"
    if not verifier.valid(message(cp.partition, cp.through_seq, cp.head, cp.state), cp.signature):
        return f"{at} is not signed with this writer's key"
    if cp.partition != partition or cp.through_seq < 1:
        return f"{at} is not of partition {partition}"
    event = store.logged_events_after(partition, cp.through_seq - 1, 1)
    if not event or event[0].seq != cp.through_seq or event[0].chain != cp.head:
        return f"{at} does not match the event log (no event of that seq and chain value)"
    if store.committed_seq(partition) < cp.through_seq:
        return f"{at} is beyond the outputs stored (commit mark)"
    try:
        plain = json.loads(cp.state)
    except ValueError:
        return f"{at} is not JSON"
    if (
        not isinstance(plain, dict)
        or plain.get("format") != FORMAT
        or (plain.get("partition"), plain.get("through_seq"), plain.get("head"))
        != (cp.partition, cp.through_seq, cp.head)
        or not isinstance(plain.get("engine"), dict)
    ):
        return f"{at} is not a {FORMAT} of its own position"
    return Trusted(cp.through_seq, cp.head, plain["engine"])
