"""tracker/lines.py `LinesRead`: the chunks read ahead in a caller's waits (`read_some`) are the
chunks read when taken, whatever the waits; the bounds hold; a reading error is the taker's."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.step import Parsed, Refusal
from tracker.lines import LinesRead, Numbered, numbered, read_lines


def _line(n: int) -> bytes:
    event = {
        "event_id": f"e-{n}",
        "type": "terminal_outbound",
        "unit": "fj-gov-0001",
        "occurred_at": "2020-03-02T09:00:00+08:00",
        "terminals": 1,
    }
    return (json.dumps(event) + "\n").encode()


def _lines(count: int, *, bad_every: int = 0) -> list[bytes]:
    out = []
    for n in range(count):
        out.append(b"{not json\n" if bad_every and n % bad_every == 0 else _line(n))
    return out


def _chunks(lines: list[bytes], size: int) -> list[list[Numbered]]:
    """The lines numbered from 1, `size` at a time, and a last chunk that may be empty: what
    reading them when taken gives, by slicing."""
    all_lines = list(numbered(iter(lines), "f"))
    return [all_lines[start : start + size] for start in range(0, len(all_lines) + 1, size)]


def _plain(read: list[list[tuple[str, Parsed | Refusal | None]]]) -> list[list[object]]:
    """The chunks as comparable values: a refusal by its reason, an event by its raw line."""

    def one(found: Parsed | Refusal | None) -> object:
        if isinstance(found, Parsed):
            return ("parsed", found.raw)
        if isinstance(found, Refusal):
            return ("refused", found.reason)
        return None

    return [[(where, one(found)) for where, found in chunk] for chunk in read]


@pytest.mark.parametrize(
    ("count", "size"),
    [
        (0, 5),  # no lines: one empty chunk, as `chunks` gives
        (4, 5),  # fewer lines than a chunk
        (5, 5),  # exactly one chunk: then the empty last chunk
        (12, 5),  # two chunks and a remainder
        (20, 1),  # chunks of one line
    ],
)
def test_the_chunks_are_those_read_when_taken(count: int, size: int) -> None:
    lines = _lines(count, bad_every=3)
    expected = _plain([read_lines(c) for c in _chunks(lines, size)])
    # no waits at all, then waits that read as much as the bounds allow before each take
    assert _plain(list(LinesRead(iter(lines), "f", size))) == expected
    read = LinesRead(iter(lines), "f", size, piece_lines=2)
    taken = []
    while True:
        while read.read_some():
            pass
        got = next(iter(read), None)
        if got is None:
            break
        taken.append(got)
    assert _plain(taken) == expected


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(0, 40),
    size=st.integers(1, 9),
    piece=st.integers(1, 7),
    waits=st.lists(st.integers(0, 6), max_size=30),
)
def test_any_interleaving_of_waits_and_takes_gives_the_same_chunks(
    count: int, size: int, piece: int, waits: list[int]
) -> None:
    lines = _lines(count, bad_every=4)
    expected = _plain([read_lines(c) for c in _chunks(lines, size)])
    read = LinesRead(iter(lines), "f", size, piece_lines=piece)
    taker = iter(read)
    taken = []
    for pieces in [*waits, *([0] * (len(expected) + 1))]:
        for _ in range(pieces):
            read.read_some()
        got = next(taker, None)
        if got is None:
            break
        taken.append(got)
    assert _plain(taken) == expected


def test_the_bounds_hold() -> None:
    lines = _lines(100)
    read = LinesRead(iter(lines), "f", 10, start_chunks=3, ahead_chunks=1, piece_lines=4)
    while read.read_some():
        pass
    # before the first take: at most `start_chunks` read whole (the 4th not begun)
    assert len(read._ready) == 3 and not read._partial
    taker = iter(read)
    first = next(taker)
    assert [w for w, _ in first][:1] == ["f:1"]
    # after a take: no more reading while `ahead_chunks` wait
    assert not read.read_some()
    second, third = next(taker), next(taker)
    assert len(read._ready) == 0
    while read.read_some():
        pass
    assert len(read._ready) == 1  # one ahead of the taker
    assert sum(len(c) for c in [first, second, third, *taker]) == 100


class _Broken(OSError):
    pass


def _failing(lines: list[bytes], after: int) -> Iterator[bytes]:
    yield from lines[:after]
    raise _Broken("the disk went away")


def test_a_reading_error_is_raised_to_the_taker_never_to_the_wait() -> None:
    read = LinesRead(_failing(_lines(30), 12), "f", 5, start_chunks=10, piece_lines=3)
    while read.read_some():  # the wait never sees the error
        pass
    taker = iter(read)
    # the chunks read whole before the error are taken first, then the error
    assert [len(c) for c in (next(taker), next(taker))] == [5, 5]
    with pytest.raises(_Broken):
        next(taker)


def test_a_reading_error_without_waits_is_raised_where_the_chunk_was() -> None:
    taker = iter(LinesRead(_failing(_lines(30), 7), "f", 5))
    assert len(next(taker)) == 5
    with pytest.raises(_Broken):
        next(taker)


def test_carriage_returns_end_lines_as_in_a_file_read_as_text() -> None:
    lines = [_line(1).rstrip(b"\n") + b"\r" + _line(2).rstrip(b"\n") + b"\r\n", _line(3)]
    read = LinesRead(iter(lines), "f", 2, piece_lines=1)
    while read.read_some():
        pass
    assert [[w for w, _ in c] for c in read] == [["f:1", "f:2"], ["f:3"]]
