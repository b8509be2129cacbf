"""Writing a checkpoint holds about a part of its text at once, not the state's rows (issue 12
item 4, memory: at 1M events of one year, `snapshot()` built every table as whole lists before
a byte was written, +614-654 MiB above the live engine; engine/snapshot.py, sinks/checkpoint.py).
And the text streamed is, byte for byte, the text written whole before (existing checkpoints,
`restore` and their signatures stay as they are)."""

from __future__ import annotations

import hashlib
import itertools
import json
import tracemalloc
from collections.abc import Iterable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from config.signing import Signer
from engine import Engine
from engine.snapshot import gc_paused, snapshot, streamed
from schemas.events import Event, parse_event
from sinks import checkpoint
from sinks.checkpoint import Checkpoint
from tests.builders import BOOKS, REGISTRY, SHIPPED_BOOKS, SHIPPED_REGISTRY, calendar
from tests.unit import snapshot_reference
from tests.unit import test_engine_properties as props
from tests.unit import test_year_closing as closing
from tracker import checkpoints, demo

KEY = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
# parts smaller than the product's (1 MiB), so that a state of a few MB is many parts and what
# a part costs (its pieces, its text, its bytes, the one the store still holds) stays small
PART_BYTES = 1 << 16


class Discarding:
    """A store that keeps nothing of the parts but their number, length and digest."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self.rows: list[Checkpoint] = []

    def save_checkpoint_parts(
        self, partition: int, through_seq: int, write: str, parts: Iterable[bytes]
    ) -> None:
        for part in parts:
            self.digest.update(part)
            self.size += len(part)

    def save_checkpoint(self, cp: Checkpoint) -> None:
        self.rows.append(cp)


def _engine(years: tuple[int, ...], scale: float, events: int) -> Engine:
    registry = load_registry(DEMO_REGISTRY)
    engine = Engine(registry, load_rulebooks(), official_calendar())
    gen = demo.generate(registry, seed=7, years=years, scale=scale)
    for line in itertools.islice(demo.lines(gen), events):
        engine.apply(parse_event(line))  # its outcome carries the entries: nothing pending
    return engine


@pytest.fixture(scope="module")
def dense() -> Engine:
    """One open year, dense (the 1M benchmark's shape, smaller): ~5 MB of checkpoint text."""
    return _engine((2018,), 75.0, 16_000)


def test_writing_a_checkpoint_holds_a_part_not_the_state(dense: Engine, monkeypatch: Any) -> None:
    monkeypatch.setattr(checkpoint, "PART_BYTES", PART_BYTES)
    store = Discarding()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        checkpoints.save(store, 0, KEY, dense, 16_000, "ab" * 32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    held = peak - before
    assert store.size > 50 * PART_BYTES  # a state of many parts, or this proves nothing
    # What is held at once: the numbering of the shared objects (~80 bytes each: the state's
    # own objects are in memory already), about 0.3x the text's size here, and a part with its
    # pieces; not the rows, which took more than 3x the text's size.
    assert held < store.size * 0.6, f"{held / 2**20:.1f} MiB held for {store.size / 2**20:.1f} MB"


def _document(state: Any, through_seq: int) -> dict[str, Any]:
    return {
        "format": checkpoint.FORMAT,
        "partition": 0,
        "through_seq": through_seq,
        "head": "ab" * 32,
        "engine": state,
    }


def _whole(state: dict[str, Any], through_seq: int) -> bytes:
    return json.dumps(
        _document(state, through_seq), ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


# streams whose state has each table filled (row: why)
STREAMS = [
    ((2018,), 75.0, 16_000),  # one dense open year: caps filled, capped entries, deadlines
    ((2017, 2018, 2020), 0.3, 8_000),  # 2016 closed, two years open (records of each)
]


@pytest.mark.parametrize("years,scale,events", STREAMS)
def test_the_text_streamed_is_the_text_written_whole_before(
    years: tuple[int, ...], scale: float, events: int, dense: Engine
) -> None:
    engine = dense if scale == 75.0 else _engine(years, scale, events)
    with gc_paused():
        old = _whole(snapshot_reference.snapshot(engine), events)
        store = Discarding()
        checkpoints.save(store, 0, KEY, engine, events, "ab" * 32)
    assert (store.size, store.digest.hexdigest()) == (len(old), hashlib.sha256(old).hexdigest())
    # the plain snapshot (restore's tests and the Kafka worker use it) spells the same text
    assert _whole(snapshot(engine), events) == old


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _same_text(engine: Engine, stream: list[Event]) -> None:
    for event in stream:
        engine.apply(event)
    with gc_paused():
        old = _whole(snapshot_reference.snapshot(engine), 1)
        parts = checkpoint.parts(0, 1, "ab" * 32, streamed(engine), 512)
        assert b"".join(parts) == old


# small states of every shape (retractions, feedback, withdrawn and re-posted notices, years
# closed): the same bytes, whatever tables are empty or short


@PROPERTY
@given(props.streams())
def test_any_stream_streams_the_text_written_whole_before(stream: list[Event]) -> None:
    _same_text(Engine(REGISTRY, BOOKS, calendar()), stream)


@PROPERTY
@given(closing.streams())
def test_any_stream_over_closing_years_streams_the_text_written_whole_before(
    stream: list[Event],
) -> None:
    _same_text(Engine(SHIPPED_REGISTRY, SHIPPED_BOOKS, calendar()), stream)
