"""What-if replay (issue 11, item 3): the store's own event log re-run under another rulebook into
a scratch store, and the difference per unit, year and indicator. MemoryStore only, no services.

The tiny stream below, computed by hand under the two provincial rulebooks (fj-2018: real-name
control −1, indicator cii-netsec max 3; fj-2017: real-name −2, cii-netsec max 7; everything else
the same):

    fj.gat  real-name −1|−2, outreach 6 terminals × 0.5 = 3 (capped to 2 in 2018) -> 3 | 5
            graded protection −2 (mlps, max 2 in both)                            -> 2 | 2
    fj.fgw  vulnerability −1, not repaired in 2 weeks −1, real-name −1|−2          -> 3 | 4
    fj.fz   (city) outreach −0.2; its county's vulnerability −1 and overdue −1     -> 2.2 both
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from config.holidays import official_calendar
from config.rulebooks import RULEBOOK_DIR, load_rulebooks
from engine.whatif import Difference, WhatIfError, what_if_config
from schemas.events import Event
from schemas.registry import Registry
from sinks import MemoryStore
from tests.builders import BOOKS as BUILT_BOOKS
from tests.builders import REGISTRY as BUILT_REGISTRY
from tests.builders import calendar as built_calendar
from tests.unit.test_engine_properties import streams
from tracker.cli import main
from tracker.ingest import ingest
from tracker.pipeline import Tracker
from tracker.whatif import what_if

SHIPPED = dict(load_rulebooks())
REGISTRY = Registry.model_validate(
    {
        "assessments": [
            {"year": 2017, "tier": "provincial-dept", "rulebook": "fj-2017-provincial-dept"},
            {"year": 2018, "tier": "provincial-dept", "rulebook": "fj-2018-provincial-dept"},
            {"year": 2018, "tier": "city-gov", "rulebook": "fj-2018-city-gov"},
        ],
        "units": [
            {"id": "fj.gat", "name": "福建省公安厅", "tier": "provincial-dept"},
            {"id": "fj.fgw", "name": "福建省发展和改革委员会", "tier": "provincial-dept"},
            {"id": "fj.fz", "name": "福州市人民政府", "tier": "city-gov"},
            {"id": "fj.fz.gl", "name": "鼓楼区人民政府", "tier": "county-gov", "parent": "fj.fz"},
        ],
    }
)
REALNAME = {"type": "control.finding", "control": "internet_terminal_realname"}
EVENTS = [
    {"event_id": "e1", "unit": "fj.gat", "at": "2018-03-01T10:00:00+08:00", **REALNAME},
    {
        "event_id": "e2",
        "type": "outreach.notice",
        "unit": "fj.gat",
        "at": "2018-03-02T10:00:00+08:00",
        "notice_id": "O-1",
        "terminals": ["T1", "T2", "T3", "T4", "T5", "T6"],
    },
    {
        "event_id": "e3",
        "type": "mlps.finding",
        "unit": "fj.gat",
        "at": "2018-03-03T10:00:00+08:00",
        "system": "OA",
    },
    {
        "event_id": "e4",
        "type": "vuln.notice",
        "unit": "fj.fgw",
        "at": "2018-04-01T10:00:00+08:00",
        "notice_id": "V-1",
        "system": "门户网站",
    },
    {"event_id": "e5", "unit": "fj.fgw", "at": "2018-04-02T10:00:00+08:00", **REALNAME},
    {
        "event_id": "e6",
        "type": "outreach.notice",
        "unit": "fj.fz",
        "at": "2018-04-03T10:00:00+08:00",
        "notice_id": "O-2",
        "terminals": ["T9"],
    },
    # a county notice without `due`: under the 2018 city rules its city judges it by 2 weeks
    {
        "event_id": "e7",
        "type": "vuln.notice",
        "unit": "fj.fz.gl",
        "at": "2018-04-04T10:00:00+08:00",
        "notice_id": "V-2",
        "system": "OA",
    },
    {"event_id": "t1", "type": "clock.tick", "at": "2018-06-01T00:00:00+08:00"},
]
DRAFT = (RULEBOOK_DIR / "fj-2018-provincial-dept.yaml").read_text(encoding="utf-8")


def _store() -> MemoryStore:
    """The stream ingested as `tracker ingest` does; like a ClickHouse store, the store records
    only the rulebooks its registry uses (so the 2020 rulebooks come from the shipped ones)."""
    store = MemoryStore()
    used = {a.rulebook for a in REGISTRY.assessments}
    books = {k: v for k, v in SHIPPED.items() if k in used}
    lines = [json.dumps(e, ensure_ascii=False) for e in EVENTS]
    summary = ingest(store, REGISTRY, books, official_calendar(), lines, "test")
    assert summary.as_dict() == {"accepted": len(EVENTS), "rejected": 0, "duplicates": 0}
    return store


def _drafts(tmp_path: Path) -> Path:
    """A draft (not shipped): the 2018 provincial rules with cii-netsec's maximum raised to 10."""
    folder = tmp_path / "drafts"
    folder.mkdir()
    text = DRAFT.replace("id: fj-2018-provincial-dept", "id: draft-2018-provincial-dept", 1)
    text = text.replace('max_points: "3"', 'max_points: "10"', 1)
    (folder / "draft-2018-provincial-dept.yaml").write_text(text, encoding="utf-8")
    return folder


def _row(unit: str, indicator: str, actual: str, what_if: str, delta: str) -> dict[str, object]:
    return {
        "unit": unit,
        "year": 2018,
        "indicator": indicator,
        "actual": actual,
        "what_if": what_if,
        "delta": delta,
    }


GAT = _row("fj.gat", "cii-netsec", "3", "5", "2")
FGW = _row("fj.fgw", "cii-netsec", "3", "4", "1")


@pytest.mark.parametrize(
    ("rulebook", "unit", "year", "expected"),
    [
        # the rulebook that assessed 2018 already: a replay of the log gives the live ledger
        ("fj-2018-provincial-dept", None, None, []),
        # the 2017 rules also re-assess 2017 (unchanged: the log has no 2017 events) and 2018
        ("fj-2017-provincial-dept", None, None, [FGW, GAT]),
        # --unit narrows the report to that unit
        ("fj-2017-provincial-dept", "fj.fgw", None, [FGW]),
        ("fj-2017-provincial-dept", "fj.gat", 2018, [GAT]),
        # --year of a year the tier is not assessed in: assessed there under the rulebook; the
        # log has no events in 2019, so nothing changes
        ("fj-2017-provincial-dept", None, 2019, []),
        # the city rulebook that assesses the city already
        ("fj-2018-city-gov", "fj.fz", None, []),
        # a draft from --rulebooks DIR: gat's outreach no longer capped at 3 (1 + 3 = 4); fgw's
        # 3 points were under 3 already
        ("draft-2018-provincial-dept", None, 2018, [_row("fj.gat", "cii-netsec", "3", "4", "1")]),
        # Ningde's 2020 county rules on the 2018 county: their overdue rule judges by the notice's
        # own due, so V-2 (no due) would have been refused, and the city's jurisdiction loses
        # the vulnerability and its overdue deduction (contract 5.7)
        ("nd-2020-county-gov", None, 2018, [_row("fj.fz", "govsys-netsec", "2.2", "0.2", "-2")]),
    ],
)
def test_differences(
    rulebook: str, unit: str | None, year: int | None, expected: list[object], tmp_path: Path
) -> None:
    store = _store()
    told: list[int] = []
    result = what_if(
        store,
        rulebook,
        drafts=_drafts(tmp_path),
        calendar=official_calendar(),
        unit=unit,
        year=year,
        on_replayed=told.append,
    )
    assert [d.as_json() for d in result.differences] == expected
    assert result.replayed == sum(told) == len(EVENTS)  # the progress display hears of each


def test_a_refused_event_is_reported() -> None:
    result = what_if(_store(), "nd-2020-county-gov", calendar=official_calendar(), year=2018)
    assert [(r.event_id, r.partition, r.seq) for r in result.refused] == [("e7", 0, 7)]
    assert "due" in result.refused[0].reason


def test_the_live_store_is_unchanged() -> None:
    store = _store()
    before = (list(store.logged_events()), store.ledger(), store.deadlines(), store.load_config())
    what_if(store, "fj-2017-provincial-dept", calendar=official_calendar())
    after = (list(store.logged_events()), store.ledger(), store.deadlines(), store.load_config())
    assert after == before


@pytest.mark.parametrize(
    ("rulebook", "unit", "year", "words"),
    [
        # an id no store, draft folder or shipped folder has
        ("fj-2016-provincial-dept", None, None, ["fj-2016-provincial-dept", "--rulebooks"]),
        # a provincial rulebook for a city: both tiers named
        ("fj-2017-provincial-dept", "fj.fz", None, ["provincial-dept", "city-gov", "fj.fz"]),
        # a unit the registry does not have
        ("fj-2017-provincial-dept", "fj.nope", None, ["fj.nope"]),
        # no year assesses county governments and none was given
        ("nd-2020-county-gov", None, None, ["county-gov", "--year"]),
    ],
)
def test_errors(rulebook: str, unit: str | None, year: int | None, words: list[str]) -> None:
    with pytest.raises(WhatIfError) as caught:
        what_if(_store(), rulebook, calendar=official_calendar(), unit=unit, year=year)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_the_rewritten_registry_keeps_ids_and_tiers() -> None:
    book = SHIPPED["fj-2017-provincial-dept"]
    registry, books = what_if_config(REGISTRY, SHIPPED, book)
    assert [(a.year, a.tier, a.rulebook) for a in registry.assessments] == [
        (2017, "provincial-dept", "fj-2017-provincial-dept"),
        # a rulebook of another year assesses this one as a copy named after both
        (2018, "provincial-dept", "fj-2017-provincial-dept-as-2018"),
        (2018, "city-gov", "fj-2018-city-gov"),
    ]
    copy = books["fj-2017-provincial-dept-as-2018"]
    assert (copy.year, copy.tier, copy.indicators) == (2018, book.tier, book.indicators)
    assert registry.units == REGISTRY.units


def test_a_difference_in_json() -> None:
    from decimal import Decimal

    d = Difference("fj.gat", 2018, "cii-netsec", Decimal("3.0"), Decimal("2.5"))
    assert d.as_json() == {
        "unit": "fj.gat",
        "year": 2018,
        "indicator": "cii-netsec",
        "actual": "3",
        "what_if": "2.5",
        "delta": "-0.5",
    }


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        # the two replays are exclusive
        (["replay", "--rulebook", "x", "--from-kafka"], ["--rulebook", "--from-kafka"]),
        # the what-if replay reads the store, not a worker
        (["replay", "--rulebook", "x", "--worker-url", "http://h:1"], ["--worker-url"]),
        # the what-if options without --rulebook
        (["replay", "--from-kafka", "--unit", "fj.gat"], ["--unit", "--rulebook"]),
        (["replay", "--json"], ["--rulebook"]),
        # neither replay
        (["replay"], ["--from-kafka", "--rulebook"]),
    ],
)
def test_usage_errors(
    argv: list[str],
    words: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("TRACKER_DATA", str(tmp_path / "data"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams())
def test_the_recorded_rulebooks_give_no_differences(stream: list[Event]) -> None:
    """Property: for any stream (retractions, late feedback, re-posts, ticks), the what-if with a
    rulebook that assessed the store replays the log to the store's own points (contract 5.13)."""
    store = MemoryStore()
    lines = [e.model_dump_json(exclude_none=True) for e in stream]
    ingest(store, BUILT_REGISTRY, BUILT_BOOKS, built_calendar(), lines, "property")
    for book_id in BUILT_BOOKS:
        result = what_if(store, book_id, calendar=built_calendar())
        assert result.differences == [], book_id
        assert result.refused == [], book_id


def test_each_partition_is_replayed_on_its_own_clock() -> None:
    """A worker's store logs each Kafka partition's events with their own seq; each partition had
    its own engine and event clock. Replayed through one engine, partition 0's tick into 2020
    would close 2018 before partition 1's 2018 events, and refuse them."""
    store = MemoryStore()
    used = {a.rulebook for a in REGISTRY.assessments}
    store.save_config(REGISTRY, {k: v for k, v in SHIPPED.items() if k in used})
    parts = {
        0: [
            EVENTS[0],
            EVENTS[1],
            {"event_id": "t9", "type": "clock.tick", "at": "2020-02-01T00:00:00+08:00"},
        ],
        1: [EVENTS[3], EVENTS[4], EVENTS[-1]],
    }
    for partition, events in parts.items():
        tracker = Tracker(store, REGISTRY, SHIPPED, official_calendar(), partition=partition)
        tracker.feed_lines([json.dumps(e, ensure_ascii=False) for e in events], f"p{partition}")
        assert tracker.summary.accepted == len(events)
    same = what_if(store, "fj-2018-provincial-dept", calendar=official_calendar())
    assert (same.differences, same.refused, same.replayed) == ([], [], 6)
    other = what_if(store, "fj-2017-provincial-dept", calendar=official_calendar())
    assert [d.as_json() for d in other.differences] == [
        _row("fj.fgw", "cii-netsec", "3", "4", "1"),  # as in the table above
        _row("fj.gat", "cii-netsec", "3", "5", "2"),  # without graded protection: the same
    ]
