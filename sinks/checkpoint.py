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

How it is stored (issue 12 item 4, memory): the text of a big state is hundreds of MB, and
holding it whole (as one str, its UTF-8 bytes, the insert's buffers) beside the live engine cost
more than the engine itself. So a writer streams it: the text is encoded piece by piece into
UTF-8 parts of about PART_BYTES (`parts`), which the store writes a few at a time
(`save_checkpoint_parts`) while their SHA-256 is summed; then the checkpoint row is written last,
its `state` a small signed header (PARTS_FORMAT) naming the parts' number, length, digest and
the write they belong to. A checkpoint row whose `state` is the text itself (FORMAT, written
before parts) is still read as it was.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, Protocol

import orjson

from config.signing import Signer, Verifier
from engine.chain import head_message
from engine.snapshot import Rows

# the text: {"format", "partition", "through_seq", "head", "engine"}
FORMAT = "tracker-checkpoint/1"
PARTS_FORMAT = "tracker-checkpoint-parts/1"  # a row's header naming the text's parts
PART_BYTES = 1 << 20  # small beside a big state's text, big enough to keep the rows few
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class Checkpoint:
    partition: int
    through_seq: int
    head: str  # the chain value of the partition's event at `through_seq`
    # JSON text: the header of the text's parts (PARTS_FORMAT), or (before parts) the text itself
    state: str
    signature: str
    written_at: datetime


class CheckpointStore(Protocol):
    """What `trusted` reads of a store (sinks/base.py StoreWriter has it all)."""

    def load_checkpoint(self, partition: int = 0) -> Checkpoint | None: ...

    def committed_seq(self, partition: int = 0) -> int: ...

    def logged_events_after(self, partition: int, seq: int, limit: int) -> list[Any]: ...

    def load_checkpoint_parts(
        self, partition: int, through_seq: int, write: str
    ) -> list[bytes]: ...


class PartsStore(Protocol):
    """Where a checkpoint's parts and then its row are written (sinks/base.py StoreWriter)."""

    def save_checkpoint_parts(
        self, partition: int, through_seq: int, write: str, parts: Iterable[bytes]
    ) -> None: ...

    def save_checkpoint(self, checkpoint: Checkpoint) -> None: ...


def message(partition: int, through_seq: int, head: str, state: str) -> bytes:
    """What the writer signs: the head message of the event chain through the position (as a
    chain head says it), and the SHA-256 of the state's text."""
    body = hashlib.sha256(state.encode("utf-8")).hexdigest()
    covered = head_message("events", str(partition), through_seq, head).decode("utf-8")
    return _dumps(["tracker-checkpoint", covered, body]).encode("utf-8")


def parts(
    partition: int,
    through_seq: int,
    head: str,
    engine_state: dict[str, Any],
    part_bytes: int | None = None,
) -> Iterator[bytes]:
    """The checkpoint's text (FORMAT) as UTF-8 parts of about `part_bytes`, encoded as they are
    asked for: never the whole text at once."""
    document = {
        "format": FORMAT,
        "partition": partition,
        "through_seq": through_seq,
        "head": head,
        "engine": engine_state,
    }
    part_bytes = part_bytes or PART_BYTES  # read when called (tests set a smaller one)
    pending: list[bytes] = []
    size = 0
    for chunk in _pieces(document):
        pending.append(chunk)
        size += len(chunk)
        if size >= part_bytes:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


SHORT = 8  # a list this short is opened ([year, rows]); a longer one is encoded in slices
SLICE = 256  # items of a long list encoded at once (a claim's row is ~150 characters)


_REFUSE_AS_JSON_DOES = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _encoded(value: Any) -> bytes:
    """`_dumps(value)` as UTF-8, by orjson: ~6x faster than json's C encoder on the state's
    rows, and the same bytes for what a state holds (strings of any characters, ints, None,
    bools, lists, dicts of str; tests/unit/test_checkpoint_encoding.py). What orjson refuses
    and json takes (an int beyond 64 bits, a key not a str, a Decimal) is encoded by json, so
    the text never depends on which encoder made it. (Floats, which orjson spells otherwise,
    are never in a state: points are decimal text, instants ISO text; docs/ingest.md.) What
    json refuses, orjson is told to refuse too where it can (instants, dates, dataclasses)."""
    try:
        # instants, dates and dataclasses to json too, which refuses them as it did: a state's
        # rows hold their text, so one that reached the rows unmade is a defect, not a value
        return orjson.dumps(value, option=_REFUSE_AS_JSON_DOES)
    except TypeError:  # orjson.JSONEncodeError is one
        return _dumps(value).encode("utf-8")


def _pieces(value: Any) -> Iterator[bytes]:
    """The JSON text of `value` as `_dumps` makes it (a `Rows` as the list of its rows), as
    UTF-8 in pieces of a few tens of KB: slices of the state's long lists and tables encoded
    at once (`_encoded`; json's own `iterencode` streams too, but in pure Python: 4x the CPU)."""
    if isinstance(value, dict) and all(type(key) is str for key in value):
        yield b"{"
        for n, (key, item) in enumerate(value.items()):
            yield (b"," if n else b"") + _encoded(key) + b":"
            yield from _pieces(item)
        yield b"}"
    elif isinstance(value, list) and len(value) <= SHORT:
        yield from _opened(value)
    elif isinstance(value, list):
        yield b"["
        for start in range(0, len(value), SLICE):
            text = _encoded(value[start : start + SLICE])
            yield (b"," if start else b"") + text[1:-1]
        yield b"]"
    elif isinstance(value, Rows) and value.nested:  # rows holding tables: each row opened
        yield b"["
        for n, row in enumerate(value):
            yield b"," if n else b""
            yield from _opened(row)
        yield b"]"
    elif isinstance(value, Rows):  # a table made as it is read: a slice of rows at a time
        yield b"["
        rows, sep = iter(value), b""
        while batch := list(islice(rows, SLICE)):
            yield sep + _encoded(batch)[1:-1]
            sep = b","
        yield b"]"
    else:
        yield _encoded(value)


def _opened(row: list[Any]) -> Iterator[bytes]:
    yield b"["
    for n, item in enumerate(row):
        if n:
            yield b","
        yield from _pieces(item)
    yield b"]"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A checkpoint made whole in memory (the Kafka worker takes one between batches and stores
    it later): its row and its parts."""

    checkpoint: Checkpoint
    write: str
    parts: tuple[bytes, ...]

    @property
    def partition(self) -> int:
        return self.checkpoint.partition

    @property
    def through_seq(self) -> int:
        return self.checkpoint.through_seq


def write(
    store: PartsStore,
    signer: Signer,
    partition: int,
    through_seq: int,
    head: str,
    engine_state: dict[str, Any],
    written_at: datetime,
    part_bytes: int | None = None,
) -> Checkpoint:
    """Store the checkpoint: its parts as they are encoded, then its signed row."""
    summed = _Summed(parts(partition, through_seq, head, engine_state, part_bytes))
    name = _write_id()
    store.save_checkpoint_parts(partition, through_seq, name, summed)
    made = _row(signer, partition, through_seq, head, name, summed, written_at)
    store.save_checkpoint(made)
    return made


def make(
    signer: Signer,
    partition: int,
    through_seq: int,
    head: str,
    engine_state: dict[str, Any],
    written_at: datetime,
) -> Prepared:
    """The checkpoint in memory, for `store_made` later."""
    summed = _Summed(parts(partition, through_seq, head, engine_state))
    held = tuple(summed)
    name = _write_id()
    return Prepared(
        _row(signer, partition, through_seq, head, name, summed, written_at), name, held
    )


def store_made(store: PartsStore, made: Prepared) -> None:
    cp = made.checkpoint
    store.save_checkpoint_parts(cp.partition, cp.through_seq, made.write, made.parts)
    store.save_checkpoint(cp)


class _Summed:
    """Parts passed through, their number, length and SHA-256 summed."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self._parts = parts
        self.digest = hashlib.sha256()
        self.count = 0
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for part in self._parts:
            self.digest.update(part)
            self.count += 1
            self.size += len(part)
            yield part


def _write_id() -> str:
    # tells one write's parts from another's of the same position (a rewrite after a crash)
    return secrets.token_hex(8)


def _row(
    signer: Signer,
    partition: int,
    through_seq: int,
    head: str,
    name: str,
    summed: _Summed,
    written_at: datetime,
) -> Checkpoint:
    header = _dumps(
        {
            "format": PARTS_FORMAT,
            "write": name,
            "parts": summed.count,
            "bytes": summed.size,
            "sha256": summed.digest.hexdigest(),
        }
    )
    signature = signer.sign(message(partition, through_seq, head, header))
    return Checkpoint(partition, through_seq, head, header, signature, written_at)


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
    text = _text(store, cp)
    if text is None:
        return f"{at} misses parts of its text (or they differ from what was signed)"
    try:
        plain = json.loads(text)
    except ValueError:
        return f"{at} is not JSON"
    del text  # the parsed state only, from here
    if (
        not isinstance(plain, dict)
        or plain.get("format") != FORMAT
        or (plain.get("partition"), plain.get("through_seq"), plain.get("head"))
        != (cp.partition, cp.through_seq, cp.head)
        or not isinstance(plain.get("engine"), dict)
    ):
        return f"{at} is not a {FORMAT} of its own position"
    return Trusted(cp.through_seq, cp.head, plain["engine"])


def write_of(cp: Checkpoint) -> str | None:
    """The write id of the checkpoint's parts (hex), or None: a row holding its text itself
    (written before parts) or not a header."""
    header = _header(cp) if cp.state.startswith(_HEADER_START) else None
    if header is None:
        return None
    name: str = header["write"]
    return name


_HEADER_START = '{"format":"' + PARTS_FORMAT + '"'


def _header(cp: Checkpoint) -> dict[str, Any] | None:
    """The row's header of parts, its write id checked hex (so safe in SQL), or None."""
    try:
        loaded = json.loads(cp.state)
    except ValueError:
        return None
    if not isinstance(loaded, dict):
        return None
    header: dict[str, Any] = loaded
    name = header.get("write")
    if not isinstance(name, str) or not name or any(c not in "0123456789abcdef" for c in name):
        return None
    return header


def _text(store: CheckpointStore, cp: Checkpoint) -> str | bytes | None:
    """The checkpoint's text: its parts joined, when its row is a header of parts whose number,
    length and digest are the signed ones; or the row's own text (written before parts)."""
    if not cp.state.startswith(_HEADER_START):
        return cp.state
    header = _header(cp)
    if header is None:
        return None
    name = header["write"]
    found = store.load_checkpoint_parts(cp.partition, cp.through_seq, name)
    digest = hashlib.sha256()
    for part in found:
        digest.update(part)
    if [len(found), sum(map(len, found)), digest.hexdigest()] != [
        header.get("parts"),
        header.get("bytes"),
        header.get("sha256"),
    ]:
        return None
    joined = b"".join(found)
    found.clear()  # the parts go as soon as they are one text
    return joined  # json.loads reads UTF-8 bytes (and says "not JSON" of what is not)
