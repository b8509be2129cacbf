"""`as_of` on the read API of `tracker serve`: the CLI's `--as-of` answers, scoped as ever."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks import MemoryStore
from tests.serve_kit import Served, event, serve

NOTICE = event("vuln.notice", "fj.gat", "n1", at="2018-03-01T10:00:00+08:00")
TICK = event("clock.tick", None, "t1", at="2018-03-20T00:00:00+08:00")  # passes the due (03-16)
BEFORE_DUE = "2018-03-16T00:00:00+08:00"  # exactly the due: still open
AFTER_DUE = "2018-03-16T00:00:00.001+08:00"


@pytest.fixture
def served(tmp_path: Path) -> Served:
    served = serve(MemoryStore(), tmp_path)
    assert served.post("centre", [NOTICE]).status_code == 200
    assert served.post("ticker", [TICK]).status_code == 200
    return served


def deducted(served: Served, who: str, **params: str) -> list[tuple[int, str]]:
    response = served.get(who, "/v1/status", unit="fj.gat", **params)
    assert response.status_code == 200, response.text
    return [(r["year"], r["deducted"]) for r in response.json() if r["year"] == 2018]


def test_status_ledger_and_deadlines_as_of(served: Served) -> None:
    assert deducted(served, "auditor") == [(2018, "2")]  # the notice and its overdue deduction
    assert deducted(served, "auditor", as_of=BEFORE_DUE) == [(2018, "1")]
    assert deducted(served, "unit_gat", as_of=AFTER_DUE) == [(2018, "2")]  # its own unit
    ledger = served.get("auditor", "/v1/ledger", unit="fj.gat", as_of=BEFORE_DUE).json()
    assert [(e["event_ids"], e["posted_by"]) for e in ledger] == [(["n1"], ["centre:*"])]
    rows = served.get("auditor", "/v1/deadlines", unit="fj.gat", as_of=BEFORE_DUE).json()
    assert [(d["ref"], d["status"]) for d in rows] == [("V-1", "open")]


@pytest.mark.parametrize(
    ("as_of", "words"),
    [
        ("yesterday", "not an RFC 3339 time"),  # not a time at all
        ("2018-03-16T00:00:00", "has no offset"),  # event time is never naive
        ("2018-03-16T00:00:00.0001+08:00", "finer than a millisecond"),  # the store's resolution
    ],
)
def test_a_bad_as_of_is_a_400_naming_it(served: Served, as_of: str, words: str) -> None:
    response = served.get("auditor", "/v1/status", as_of=as_of)
    assert response.status_code == 400 and words in response.json()["detail"]


def test_scope_still_holds_as_of(served: Served) -> None:
    response = served.get("unit_fz", "/v1/status", unit="fj.gat", as_of=AFTER_DUE)
    assert response.status_code == 403
