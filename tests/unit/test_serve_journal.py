"""The intake journal read back (tracker/serve/journal.py): untrusted input, read as JSON and
checked record by record; a torn last record is cut off; the applied mark says where to resume;
segments are started and deleted as they fill and are applied."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tracker.serve.journal import Journal

AT = datetime(2018, 4, 1, 2, 0, tzinfo=UTC)
GOOD = b'{"v":1,"by":"centre:*","at":"2018-04-01T02:00:00+00:00","lines":[[1,"{}"]]}\n'


def write(journal: Journal, n: int) -> None:
    for i in range(n):
        entry = journal.append("centre:*", AT, [(1, f'{{"event_id":"e-{i}"}}')], [])
        journal.sync(entry.position)


@pytest.mark.parametrize(
    "damaged",
    [
        b"not json at all\n",  # garbage
        b'{"v":2,"by":"x","at":"2018-04-01T02:00:00+00:00","lines":[]}\n',  # another version
        b'{"v":1,"by":7,"at":"2018-04-01T02:00:00+00:00","lines":[]}\n',  # poster not text
        b'{"v":1,"by":"x","at":"2018-04-01T02:00:00","lines":[]}\n',  # a naive instant
        b'{"v":1,"by":"x","at":"yesterday","lines":[]}\n',  # not an instant
        b'{"v":1,"by":"x","at":"2018-04-01T02:00:00+00:00","lines":[[1,2]]}\n',  # line not text
        b'{"v":1,"by":"x","at":"2018-04-01T02:00:00+00:00","lines":[["1","a"]]}\n',  # number
        b'{"v":1,"by":"x","at":"2018-04-01T02:00:00+00:00"}\n',  # no lines
        b"[1, 2, 3]\n",  # not an object
        b"\x80\x04\x95pickle\n",  # a pickle's bytes: never unpickled, just not JSON
    ],
)
def test_a_damaged_record_is_skipped_and_the_others_read(
    damaged: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "000000000001.jsonl").write_bytes(GOOD + damaged + GOOD)
    with caplog.at_level(logging.ERROR, logger="tracker.serve.journal"):
        entries = Journal(tmp_path).recover()
    assert [e.seq for e in entries] == [1, 2]
    assert all(e.posted_by == "centre:*" and e.lines == ((1, "{}"),) for e in entries)
    assert "damaged record" in caplog.text


def test_a_torn_last_record_is_cut_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "000000000001.jsonl"
    path.write_bytes(GOOD + GOOD[:30])
    with caplog.at_level(logging.WARNING, logger="tracker.serve.journal"):
        entries = Journal(tmp_path).recover()
    assert len(entries) == 1 and "torn last record" in caplog.text
    assert path.read_bytes() == GOOD


def test_recovery_resumes_after_the_applied_mark(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    write(journal, 3)
    entries = Journal(tmp_path).recover()
    assert [e.lines[0][1] for e in entries] == [f'{{"event_id":"e-{i}"}}' for i in range(3)]
    journal.applied(entries[1])
    left = Journal(tmp_path).recover()
    assert [e.lines[0][1] for e in left] == ['{"event_id":"e-2"}']


@pytest.mark.parametrize("mark", [b"", b"{", b'{"segment": "1", "offset": 0}', b"[]"])
def test_an_unreadable_applied_mark_reads_everything_again(mark: bytes, tmp_path: Path) -> None:
    write(Journal(tmp_path), 2)
    (tmp_path / "applied.json").write_bytes(mark)
    assert len(Journal(tmp_path).recover()) == 2  # applying again is harmless (idempotent)


def test_segments_roll_over_and_applied_ones_are_deleted(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=100)
    write(journal, 5)
    assert len(list(tmp_path.glob("*.jsonl"))) > 1
    entries = Journal(tmp_path).recover()
    assert len(entries) == 5
    journal.applied(entries[-1])
    assert [p.name for p in tmp_path.glob("*.jsonl")] == [f"{entries[-1].segment:012d}.jsonl"]
    assert Journal(tmp_path).recover() == []


def test_after_recovery_new_records_go_to_a_new_segment(tmp_path: Path) -> None:
    write(Journal(tmp_path), 1)
    journal = Journal(tmp_path)
    (old,) = journal.recover()
    write(journal, 1)
    assert len(list(tmp_path.glob("*.jsonl"))) == 2
    assert [e.segment for e in Journal(tmp_path).recover()] == [old.segment, old.segment + 1]


def test_new_segments_come_after_the_applied_one_even_when_it_is_gone(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=100)
    write(journal, 3)
    entries = Journal(tmp_path).recover()
    journal.applied(entries[-1])
    for path in tmp_path.glob("*.jsonl"):
        path.unlink()  # (say, by hand)
    journal = Journal(tmp_path)
    assert journal.recover() == []
    write(journal, 1)
    (new,) = Journal(tmp_path).recover()  # not taken for applied
    assert new.segment > entries[-1].segment
