"""A checkpoint's text is streamed to the store in parts, never held whole (issue 12 item 4,
memory: `tracker ingest` of 1M events held the state's rows, its JSON text as one str, its
UTF-8 copy and the insert's buffers at once, 2.2 GiB above the engine; sinks/checkpoint.py).
A row written before parts, holding the text itself, is still read."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.signing import Signer
from sinks import checkpoint
from sinks.checkpoint import Checkpoint

KEY = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
AT = datetime(2026, 1, 1, tzinfo=UTC)
# a state of ~400 KB, with text beyond ASCII (reasons are Chinese)
STATE: dict[str, Any] = {
    "claims": [[n, f"福州 第{n}条 \u0000 ok", str(n / 4)] for n in range(12_000)]
}


class PartsLog:
    """A store that says what it was handed and when: the parts one by one as it pulled them,
    and how many the encoder had made when each was pulled."""

    def __init__(self, made: list[int]) -> None:
        self.made = made  # parts made so far (the encoder counts into it)
        self.pulled: list[tuple[int, int]] = []  # (length, parts made when it was pulled)
        self.handed: Iterable[bytes] | None = None
        self.parts: dict[tuple[int, int, str], list[bytes]] = {}
        self.rows: list[Checkpoint] = []

    def save_checkpoint_parts(
        self, partition: int, through_seq: int, write: str, parts: Iterable[bytes]
    ) -> None:
        assert not self.rows, "the parts come before the row"
        self.handed = parts
        held = self.parts.setdefault((partition, through_seq, write), [])
        for part in parts:
            self.pulled.append((len(part), self.made[0]))
            held.append(part)

    def save_checkpoint(self, cp: Checkpoint) -> None:
        self.rows.append(cp)

    # what `trusted` reads besides (sinks/checkpoint.py CheckpointStore)
    def load_checkpoint(self, partition: int = 0) -> Checkpoint | None:
        return self.rows[-1] if self.rows else None

    def committed_seq(self, partition: int = 0) -> int:
        return 10**9

    def logged_events_after(self, partition: int, seq: int, limit: int) -> list[Any]:
        cp = self.rows[-1]
        return [type("Row", (), {"seq": cp.through_seq, "chain": cp.head})()]

    def load_checkpoint_parts(self, partition: int, through_seq: int, write: str) -> list[bytes]:
        return list(self.parts.get((partition, through_seq, write), []))


def _counting(made: list[int]) -> Any:
    real = checkpoint.parts

    def parts(*args: Any) -> Iterator[bytes]:
        for part in real(*args):
            made[0] += 1
            yield part

    return parts


def test_the_writer_hands_the_store_parts_as_it_encodes_them(monkeypatch: Any) -> None:
    made = [0]
    monkeypatch.setattr(checkpoint, "parts", _counting(made))
    store = PartsLog(made)
    cp = checkpoint.write(store, KEY, 0, 7, "ab" * 32, STATE, AT, part_bytes=16_384)
    # an iterator, not a list: the store reads a part, then the next one is encoded
    assert not isinstance(store.handed, Sequence)
    assert len(store.pulled) > 20
    assert [ahead for _, ahead in store.pulled] == list(range(1, len(store.pulled) + 1))
    # each part about the size asked for (characters counted: up to 3 bytes each)
    assert max(size for size, _ in store.pulled) < 4 * 16_384
    # the row, last, signs a header naming the parts by number, length and digest
    (text,) = store.parts.values()
    joined = b"".join(text)
    header = json.loads(cp.state)
    assert header == {
        "format": checkpoint.PARTS_FORMAT,
        "write": checkpoint.write_of(cp),
        "parts": len(text),
        "bytes": len(joined),
        "sha256": hashlib.sha256(joined).hexdigest(),
    }
    assert KEY.verifier.valid(checkpoint.message(0, 7, cp.head, cp.state), cp.signature)
    # the parts joined are the text a row held before parts
    assert json.loads(joined) == {
        "format": checkpoint.FORMAT,
        "partition": 0,
        "through_seq": 7,
        "head": "ab" * 32,
        "engine": STATE,
    }
    found = checkpoint.trusted(store, 0, KEY.verifier)
    assert isinstance(found, checkpoint.Trusted) and found.engine_state == STATE


# states whose text the parts must spell exactly as one `json.dumps` would (row: why)
SHAPES: list[Any] = [
    {},  # nothing
    {"rows": []},  # an empty long-list slot
    {"rows": list(range(257))},  # a long list: slices of 256 and one of 1
    {"rows": list(range(512))},  # slices that end exactly at the end
    {"records": [[2018, [[f"e{n}", None, True] for n in range(600)]], [2019, []]]},  # [year, rows]
    {"short": [1, [2, [3, {"k": "v"}]]], "s": '福州"\n\u0000'},  # short lists opened, escapes
    {"by_int": {1: "a", 2: [3]}},  # keys that are not text: one encode, as json makes them
    STATE,
]


@pytest.mark.parametrize("state", SHAPES, ids=range(len(SHAPES)))
def test_the_parts_spell_the_text_of_one_encode(state: Any) -> None:
    joined = b"".join(checkpoint.parts(3, 9, "cd" * 32, state, 1_000)).decode("utf-8")
    document = {
        "format": checkpoint.FORMAT, "partition": 3, "through_seq": 9, "head": "cd" * 32,
        "engine": state,
    }  # fmt: skip
    assert joined == json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def test_a_row_holding_its_text_as_before_parts_is_still_trusted() -> None:
    store = PartsLog([0])
    text = json.dumps(
        {"format": checkpoint.FORMAT, "partition": 0, "through_seq": 7, "head": "ab" * 32,
         "engine": STATE},
        ensure_ascii=False, separators=(",", ":"),
    )  # fmt: skip
    signature = KEY.sign(checkpoint.message(0, 7, "ab" * 32, text))
    store.rows.append(Checkpoint(0, 7, "ab" * 32, text, signature, AT))
    found = checkpoint.trusted(store, 0, KEY.verifier)
    assert isinstance(found, checkpoint.Trusted) and found.engine_state == STATE
    # and such a row edited after signing is refused as before
    store.rows.append(dataclasses.replace(store.rows[0], state=text.replace("福州", "厦门", 1)))
    assert "not signed" in str(checkpoint.trusted(store, 0, KEY.verifier))


def test_a_made_checkpoint_holds_utf8_parts_and_stores_them_before_its_row() -> None:
    """The Kafka worker's: made between batches, stored later."""
    held = checkpoint.make(KEY, 0, 7, "ab" * 32, STATE, AT)
    assert all(isinstance(p, bytes) for p in held.parts) and held.through_seq == 7
    store = PartsLog([0])
    checkpoint.store_made(store, held)
    assert store.rows == [held.checkpoint]
    found = checkpoint.trusted(store, 0, KEY.verifier)
    assert isinstance(found, checkpoint.Trusted) and found.engine_state == STATE
