"""`tracker ingest` continues from the store's checkpoint (issue 12 item 4; sinks/checkpoint.py,
tracker/checkpoints.py): a store ingested in pieces ends exactly as one ingested at once, the
later pieces replaying only what follows the checkpoint; a checkpoint that is not to be trusted
is said so in one line and the whole log is replayed, never a crash."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from config.signing import Signer
from engine.snapshot import snapshot
from sinks import checkpoint
from sinks.memory import MemoryStore
from tests.integration.store_dump import dump
from tracker import demo
from tracker.ingest import ingest
from tracker.pipeline import Tracker

KEY = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
OTHER_KEY = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
REGISTRY = load_registry(DEMO_REGISTRY)
BOOKS = dict(load_rulebooks())
CALENDAR = official_calendar()


class ScanCountingStore(MemoryStore):
    """Counts the reads of the whole event log (a full replay)."""

    scans = 0

    def logged_events(self) -> Iterator[Any]:
        self.scans += 1
        yield from super().logged_events()


@pytest.fixture(scope="module")
def lines() -> list[str]:
    # a sparse stream over three years: 2017 closes in 2019, deadlines open across the pieces,
    # re-posts, redeliveries (duplicates) and retractions
    gen = demo.generate(REGISTRY, seed=11, years=(2017, 2018, 2020), scale=0.5)
    return list(itertools.islice(demo.lines(gen), 6_000))


@pytest.fixture(scope="module")
def straight(lines: list[str]) -> dict[str, Any]:
    store = MemoryStore()
    ingest(store, REGISTRY, BOOKS, CALENDAR, lines, "stream.jsonl", signer=KEY)
    return dump(store)


def run(store: MemoryStore, lines: list[str], warnings: list[str] | None = None) -> None:
    """`ingest` as the CLI runs it, the warnings collected."""
    stored = store.load_config()
    assert stored is None or stored == (REGISTRY, BOOKS)
    store.save_config(REGISTRY, BOOKS)
    tracker = Tracker(
        store,
        REGISTRY,
        BOOKS,
        CALENDAR,
        signer=KEY,
        warn=(warnings if warnings is not None else []).append,
    )
    tracker.restore()
    tracker.feed_lines(lines, "stream.jsonl")
    tracker.checkpoint()


def test_pieces_end_as_one_ingest_and_replay_only_after_the_checkpoint(
    lines: list[str], straight: dict[str, Any]
) -> None:
    store = ScanCountingStore()
    warnings: list[str] = []
    for start in range(0, len(lines), 1_500):
        run(store, lines[start : start + 1_500], warnings)
        found = store.load_checkpoint(0)
        assert found is not None and found.through_seq == store.next_seq(0) - 1
    assert store.scans == 1  # the first run's, on an empty store: the others resumed
    assert warnings == []
    assert dump(store) == straight


def test_the_log_beyond_the_checkpoint_is_replayed(
    lines: list[str], straight: dict[str, Any]
) -> None:
    store = ScanCountingStore()
    run(store, lines[:2_000])
    # a run that stopped before its checkpoint: the log holds events after it
    tracker = Tracker(store, REGISTRY, BOOKS, CALENDAR, signer=KEY)
    tracker.restore()
    tracker.feed_lines(lines[2_000:4_000], "stream.jsonl")
    found = store.load_checkpoint(0)
    assert found is not None and found.through_seq < store.next_seq(0) - 1
    run(store, lines[4_000:])
    assert store.scans == 1
    assert dump(store) == straight


def _tampered(store: MemoryStore, **change: Any) -> None:
    found = store.load_checkpoint(0)
    assert found is not None
    store._checkpoints[0] = dataclasses.replace(found, **change)


def _text(store: MemoryStore, cp: checkpoint.Checkpoint) -> str:
    """The checkpoint's text, its parts joined."""
    write = checkpoint.write_of(cp)
    assert write is not None
    return b"".join(store.load_checkpoint_parts(0, cp.through_seq, write)).decode("utf-8")


def _resigned_state(store: MemoryStore, cp: checkpoint.Checkpoint, edit: Any) -> dict[str, Any]:
    """The text edited, and signed again with the writer's own key (a bug, not an attack), in
    the row itself as checkpoints were written before parts (still read)."""
    plain = json.loads(_text(store, cp))
    edit(plain)
    text = json.dumps(plain)
    signed = checkpoint.message(0, plain["through_seq"], plain["head"], text)
    return {"state": text, "signature": KEY.sign(signed)}


def _edit_part(store: MemoryStore, cp: checkpoint.Checkpoint, edit: Any) -> dict[str, Any]:
    """The checkpoint's parts changed after its row was signed; the row as it was."""
    key = (0, cp.through_seq, checkpoint.write_of(cp))
    store._checkpoint_parts[key] = edit(store._checkpoint_parts[key])  # type: ignore[index]
    return {}


def _bad_engine(plain: dict[str, Any]) -> None:
    plain["engine"]["claims"][0][8] = "-1"  # negative points applied


def _other_format(plain: dict[str, Any]) -> None:
    plain["format"] = "tracker-checkpoint/0"


def _more_parts(cp: checkpoint.Checkpoint) -> dict[str, Any]:
    header = json.loads(cp.state)
    header["parts"] += 1
    text = json.dumps(header, separators=(",", ":"))
    return {
        "state": text,
        "signature": KEY.sign(checkpoint.message(0, cp.through_seq, cp.head, text)),
    }


# what is wrong with the stored checkpoint, and what the one-line warning says
UNTRUSTED: list[tuple[str, Any, str]] = [
    # signed with another key (or by no writer of this store)
    ("other key", lambda s, cp: {"signature": OTHER_KEY.sign(b"x")}, "not signed with this writer"),
    # not signed at all
    ("unsigned", lambda s, cp: {"signature": ""}, "not signed with this writer"),
    # its row (the header naming its parts) changed after signing
    (
        "edited row",
        lambda s, cp: {"state": cp.state.replace('"parts":', '"parts":1', 1)},
        "not signed",
    ),
    # its text changed after signing: the parts' digest differs from the signed one
    (
        "edited text",
        lambda s, cp: _edit_part(s, cp, lambda ps: [p.replace(b'"0.5"', b'"0.25"', 1) for p in ps]),
        "misses parts of its text",
    ),
    # a part lost (a crash between a write's parts, or a delete)
    (
        "a part lost",
        lambda s, cp: _edit_part(s, cp, lambda ps: ps[:-1]),
        "misses parts of its text",
    ),
    # a signed header naming parts the store does not hold
    ("parts not there", lambda s, cp: _more_parts(cp), "misses parts of its text"),
    # a position the log does not have: signed, but made from another log
    (
        "other log",
        lambda s, cp: {
            "head": "0" * 64,
            "signature": KEY.sign(checkpoint.message(0, cp.through_seq, "0" * 64, cp.state)),
        },
        "does not match the event log",
    ),
    # beyond the log's end
    (
        "beyond the log",
        lambda s, cp: {
            "through_seq": 10**6,
            "signature": KEY.sign(checkpoint.message(0, 10**6, cp.head, cp.state)),
        },
        "does not match the event log",
    ),
    # a signed state the engine cannot read back
    ("bad engine state", lambda s, cp: _resigned_state(s, cp, _bad_engine), "cannot be restored"),
    # a signed state of another format
    ("other format", lambda s, cp: _resigned_state(s, cp, _other_format), "is not a tracker-ch"),
]


@pytest.mark.parametrize("name,change,says", UNTRUSTED, ids=[u[0] for u in UNTRUSTED])
def test_an_untrusted_checkpoint_is_said_and_the_whole_log_replayed(
    name: str, change: Any, says: str, lines: list[str], straight: dict[str, Any]
) -> None:
    store = ScanCountingStore()
    run(store, lines[:3_000])
    found = store.load_checkpoint(0)
    assert found is not None
    _tampered(store, **change(store, found))
    warnings: list[str] = []
    run(store, lines[3_000:], warnings)
    assert store.scans == 2  # the first run's, and this one's full replay
    assert len(warnings) == 1 and says in warnings[0], warnings
    assert "replaying the whole event log" in warnings[0]
    # and the run wrote a checkpoint to trust again
    run(store, [], warnings)
    assert store.scans == 2 and len(warnings) == 1
    assert dump(store) == straight


def test_a_checkpoint_of_another_configuration_is_not_used(lines: list[str]) -> None:
    store = ScanCountingStore()
    run(store, lines[:1_000])
    books = {k: v.model_copy() for k, v in BOOKS.items()}
    cal = dataclasses.replace(CALENDAR, holidays=CALENDAR.holidays - {min(CALENDAR.holidays)})
    warnings: list[str] = []
    tracker = Tracker(store, REGISTRY, books, cal, signer=KEY, warn=warnings.append)
    tracker.restore()
    assert store.scans == 2
    assert len(warnings) == 1 and "another registry, rulebooks or calendar" in warnings[0]


def test_without_a_key_there_are_no_checkpoints(lines: list[str]) -> None:
    store = ScanCountingStore()
    ingest(store, REGISTRY, BOOKS, CALENDAR, lines[:500], "a.jsonl")
    assert store.load_checkpoint(0) is None


def test_a_remembering_tracker_resumes_and_still_knows_every_logged_id(lines: list[str]) -> None:
    """`tracker serve`'s embedded backend: it restores the checkpoint, replays only the events
    after it, and still reads every id of the log (it tells duplicates from memory)."""
    store = ScanCountingStore()
    run(store, lines[:2_000])
    tail = Tracker(store, REGISTRY, BOOKS, CALENDAR, signer=KEY)
    tail.restore()
    tail.feed_lines(lines[2_000:2_500], "stream.jsonl")  # logged after the checkpoint
    serving = Tracker(store, REGISTRY, BOOKS, CALENDAR, signer=KEY, remember_log=True)
    found = store.load_checkpoint(0)
    assert found is not None
    scans = store.scans
    assert serving.restore() == store.next_seq(0) - 1 - found.through_seq
    # the ids alone are read of the whole log, not every event's row (a 1M-event store: ~9 s
    # of `tracker serve`'s start)
    assert store.scans == scans
    assert all(serving.in_log(e.event_id) for e in store.logged_events())
    straight = Tracker(MemoryStore(), REGISTRY, BOOKS, CALENDAR)
    straight.feed_lines(lines[:2_500], "stream.jsonl")
    assert serving.engine.watermark == straight.engine.watermark
    assert snapshot(serving.engine) == snapshot(straight.engine)
