"""The audit report page (tracker/report.py) from an in-memory store: every value is escaped,
the totals are `build_status`'s, every entry is listed with its clause. The browser test
(tests/integration/test_report_browser.py) checks the page as Chromium draws it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import Engine
from schemas.registry import Registry
from sinks.base import Batch
from sinks.memory import MemoryStore
from tests.builders import BOOKS, REGISTRY, apply_all, calendar, ev, tick
from tracker import report
from tracker.errors import UserError

HOSTILE = '<script>alert("x")</script>'


def _store(registry: Registry = REGISTRY) -> MemoryStore:
    outcomes = apply_all(
        Engine(registry, BOOKS, calendar()),
        [
            ev("vuln.notice", "2018-03-01T10:00:00", unit="gat", event_id="n1", notice_id="V<1>", system=HOSTILE),
            ev("extranet.notice", "2018-03-02T10:00:00", unit="gat", event_id="x1", notice_id="X-1"),
            ev("event.retracted", "2018-03-03T10:00:00", unit="gat", event_id="r1", target_event_id="x1", reason=HOSTILE),
            tick("2018-04-01T00:00:00"),
        ],
    )  # fmt: skip
    store = MemoryStore()
    store.save_config(registry, BOOKS)
    store.write(
        Batch(
            entries=[e for o in outcomes for e in o.entries],
            deadlines=[d for o in outcomes for d in o.deadlines],
        )
    )
    return store


def test_every_value_is_escaped() -> None:
    units = [u.model_dump() for u in REGISTRY.units]
    units[0]["name"] = "<img src=x onerror=alert(1)>公安厅"
    registry = Registry.model_validate({"assessments": REGISTRY.assessments, "units": units})
    page = report.render(report.gather(_store(registry), "gat", 2018))
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page  # the retraction's reason and the system's name
    assert "&lt;img src=x onerror=alert(1)&gt;公安厅" in page
    assert 'data-ref="V&lt;1&gt;"' in page


def test_page_is_self_contained() -> None:
    page = report.render(report.gather(_store(), "gat", 2018))
    assert not re.search(r"""(src|href)\s*=|@import|url\(|<script""", page)


def test_totals_and_rows() -> None:
    store = _store()
    got = report.gather(store, "gat", 2018)
    # n1 -1 and its overdue -1 stand; x1 -1 is reversed by the retraction: 2 of 3
    assert str(got.status.deducted) == "2"
    assert [r.entry.entry_id for r in got.rows] == [e.entry_id for e in store.ledger("gat", 2018)]
    overdue = next(r for r in got.rows if r.entry.item == "7")
    assert overdue.clause == "c7"
    assert overdue.caps == ("indicator max 3",)
    assert overdue.events == ("n1 · V<1> 2018-03-01 10:00:00",)
    reversed_x1 = next(r for r in got.rows if r.entry.event_ids == ("x1",))
    assert len(reversed_x1.reversed_by) == 1
    net = next(line for line in got.drawing.lines if line.indicator == "net")
    assert net.remaining == "1"


@pytest.mark.parametrize(
    ("unit", "year", "message"),
    [
        ("nobody", 2018, "unknown unit 'nobody'"),  # not in the recorded registry
        ("gat", 1999, "gat has no assessment and no events in 1999"),  # nothing that year
    ],
)
def test_what_the_user_can_fix(unit: str, year: int, message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        report.gather(_store(), unit, year)


def test_an_empty_store_says_to_ingest_first() -> None:
    with pytest.raises(UserError, match="tracker ingest"):
        report.gather(MemoryStore(), "gat", 2018)


def test_pdf_without_chromium(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(report, "chromium", lambda: None)
    with pytest.raises(UserError, match="needs chromium, which is not installed"):
        report.print_pdf(tmp_path / "r.html", tmp_path / "r.pdf")
