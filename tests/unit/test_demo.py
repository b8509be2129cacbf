"""The demo registry (config/data/units-fujian.yaml) and the seeded demo stream (tracker/demo.py)."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from datetime import datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.events import EVENT_TYPES, EventError, parse_event
from schemas.registry import Registry
from tracker import demo

REGISTRY_FILE = Path(__file__).resolve().parents[2] / "config" / "data" / "units-fujian.yaml"
RULEBOOK_DIR = Path(__file__).resolve().parents[2] / "rulebooks"
ALL_YEARS = (2017, 2018, 2020)
EIGHT = timedelta(hours=8)


@cache
def registry() -> Registry:
    return Registry.model_validate(yaml.safe_load(REGISTRY_FILE.read_text(encoding="utf-8")))


@cache
def stream(
    seed: int = 2018, years: tuple[int, ...] = ALL_YEARS, scale: float = 1.0
) -> tuple[str, ...]:
    return tuple(demo.lines(demo.generate(registry(), seed=seed, years=years, scale=scale)))


@cache
def events() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(line) for line in stream())


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- registry --------------------------------------------------------------------------------------
def test_registry_has_every_fujian_unit_by_tier() -> None:
    tiers = Counter(u.tier for u in registry().units)
    assert tiers == {"provincial-dept": 38, "city-gov": 10, "county-gov": 83, "city-dept": 12}


def test_registry_ids_are_short_ascii_and_parents_are_the_right_tier() -> None:
    reg = registry()
    for unit in reg.units:
        assert re.fullmatch(r"fj(\.[a-z0-9]+)+", unit.id), unit.id
        if unit.tier in ("provincial-dept", "city-gov"):
            assert unit.parent is None
        else:
            parent = reg.unit(unit.parent or "")
            assert parent is not None and parent.tier == "city-gov", unit.id
            assert unit.id.startswith(parent.id + ".")
    assert {u.parent for u in reg.units if u.tier == "city-dept"} == {"fj.nd"}
    per_city = Counter(u.parent for u in reg.units if u.tier == "county-gov")
    assert per_city["fj.nd"] == 9 and per_city["fj.xm"] == 6 and "fj.pingtan" not in per_city


def test_registry_names_follow_the_seed() -> None:
    reg = registry()
    names = {u.id: u.name for u in reg.units}
    assert names["fj.gat"] == "福建省公安厅"
    assert names["fj.szfbgt"] == "福建省人民政府办公厅"
    assert names["fj.fgw"] == "福建省发展和改革委员会"
    assert names["fj.fz"] == "福州市人民政府"
    assert names["fj.pingtan"] == "平潭综合实验区管理委员会"
    assert names["fj.fz.gl"] == "鼓楼区人民政府"
    assert names["fj.nd.d.gaj"] == "宁德市公安局"
    assert len(set(names.values())) == len(names)


def test_registry_assesses_the_five_rulebooks_and_they_exist() -> None:
    got = {(a.year, a.tier, a.rulebook) for a in registry().assessments}
    assert got == {
        (2017, "provincial-dept", "fj-2017-provincial-dept"),
        (2018, "provincial-dept", "fj-2018-provincial-dept"),
        (2018, "city-gov", "fj-2018-city-gov"),
        (2020, "county-gov", "nd-2020-county-gov"),
        (2020, "city-dept", "nd-2020-city-dept"),
    }
    for _, _, book in got:
        assert (RULEBOOK_DIR / f"{book}.yaml").is_file(), book


# -- generator -------------------------------------------------------------------------------------
def test_same_seed_same_stream_and_another_seed_another() -> None:
    again = tuple(demo.lines(demo.generate(registry(), seed=2018, years=ALL_YEARS)))
    assert again == stream()
    assert stream(seed=7, years=(2018,), scale=0.3) != stream(seed=8, years=(2018,), scale=0.3)


def test_every_line_is_a_valid_event_of_a_known_unit() -> None:
    reg = registry()
    seen: Counter[str] = Counter()
    for line in stream():
        event = parse_event(line)
        seen[event.type] += 1
        if event.type != "clock.tick":
            assert reg.unit(event.unit) is not None, line
    assert set(seen) == EVENT_TYPES  # every kind of event shows up


def test_event_ids_are_unique_except_exact_redeliveries() -> None:
    lines_by_id: dict[str, set[str]] = {}
    count: Counter[str] = Counter()
    for line, event in zip(stream(), events(), strict=True):
        lines_by_id.setdefault(event["event_id"], set()).add(line)
        count[event["event_id"]] += 1
    repeated = [i for i, n in count.items() if n > 1]
    assert 0 < len(repeated) < 0.01 * len(count)
    assert all(count[i] == 2 and len(lines_by_id[i]) == 1 for i in repeated)


def test_some_notices_are_reposted_under_a_new_event_id() -> None:
    refs = Counter(
        (e["type"], e.get("notice_id") or e.get("incident_id") or e.get("signal_id"))
        for e in {e["event_id"]: e for e in events()}.values()
        if e["type"].endswith((".notice", ".warning", ".report"))
    )
    assert sum(n > 1 for n in refs.values()) > 10


def test_timestamps_carry_the_beijing_offset() -> None:
    for event in events():
        for field in ("at", "due"):
            if field in event:
                assert event[field].endswith("+08:00")
                assert when(event[field]).utcoffset() == EIGHT


def test_ticks_have_no_unit_are_regular_and_the_last_resolves_every_deadline() -> None:
    out = [json.loads(line) for line in stream(years=(2018,), scale=0.2)]
    ticks = [e for e in out if e["type"] == "clock.tick"]
    assert all(set(t) == {"event_id", "type", "at"} for t in ticks)
    gaps = {when(b["at"]) - when(a["at"]) for a, b in itertools.pairwise(ticks)}
    assert gaps == {timedelta(hours=6)}
    assert out[-1] == ticks[-1] and ticks[-1]["at"] == "2019-01-31T00:00:00+08:00"
    custom = list(demo.generate(registry(), years=(2020,), scale=0.1, tick_hours=7))
    assert custom[-1]["at"] == "2021-01-31T00:00:00+08:00"
    assert all(e["type"] != "clock.tick" or "unit" not in e for e in custom)


def judged_due(notice: dict[str, Any]) -> datetime:
    """The instant that judges a demo notice (contract 5.7): its own due under the 2020 clauses
    (按期), else 2 weeks to 24:00 of the 14th day after the day of receipt."""
    at = when(notice["at"])
    if at.year in demo.DUE_JUDGED_YEARS:
        return when(notice["due"])
    return datetime.combine(at.date() + timedelta(days=15), time(0), at.tzinfo)


def test_notices_judged_by_their_due_carry_one() -> None:
    notices = [e for e in events() if e["type"] == "vuln.notice"]
    judged = [n for n in notices if when(n["at"]).year in demo.DUE_JUDGED_YEARS]
    assert judged and all(when(n["due"]) > when(n["at"]) for n in judged)
    others = [n for n in notices if n not in judged]
    assert 0.05 < sum("due" in n for n in others) / len(others) < 0.3  # shown, judges nothing


def test_arrival_order_is_mostly_event_time_with_late_but_on_time_feedback() -> None:
    watermark, behind, late_on_time = when("2000-01-01T00:00:00+08:00"), 0, 0
    dues: dict[str, datetime] = {}
    for e in events():
        at = when(e["at"])
        if e["type"] == "vuln.notice":
            dues.setdefault(e["notice_id"], judged_due(e))
        if e["type"] == "vuln.feedback" and at <= dues[e["notice_id"]] < watermark:
            late_on_time += 1
        behind += at < watermark
        watermark = max(watermark, at)
    assert behind < 0.03 * len(events())
    assert late_on_time > 10


def test_follow_ups_refer_to_earlier_events_of_the_same_unit() -> None:
    by_id: dict[str, dict[str, Any]] = {}
    refs: dict[tuple[str, str], str] = {}  # (type, ref) -> unit
    for e in events():
        if e["type"] == "vuln.feedback":
            assert refs[("vuln.notice", e["notice_id"])] == e["unit"]
        elif e["type"] == "supervision.handled":
            assert refs[("supervision.warning", e["signal_id"])] == e["unit"]
        elif e["type"] == "event.retracted":
            assert by_id[e["target_event_id"]]["unit"] == e["unit"]
            assert e["reason"] == "posted in error"
        for field in ("notice_id", "signal_id"):
            if field in e:
                refs[(e["type"], e[field])] = e["unit"]
        by_id[e["event_id"]] = e


def test_units_only_generate_in_years_they_count() -> None:
    reg = registry()
    tiers: dict[int, set[str]] = {}
    for e in events():
        if "unit" in e and e["type"] not in (
            "vuln.feedback",
            "supervision.handled",
            "event.retracted",
        ):
            unit = reg.unit(e["unit"])
            assert unit is not None
            tiers.setdefault(when(e["at"]).year, set()).add(unit.tier)
    assert tiers[2017] == {"provincial-dept"}
    assert tiers[2018] == {"provincial-dept", "city-gov", "county-gov", "city-dept"}
    assert tiers[2020] == {"county-gov", "city-dept"}


def test_supervision_warnings_are_for_city_departments_on_2020_weekdays() -> None:
    warnings = [e for e in events() if e["type"] == "supervision.warning"]
    assert warnings
    for w in warnings:
        at = when(w["at"])
        assert w["unit"].startswith("fj.nd.d.") and at.year == 2020 and at.weekday() < 5


def test_outreach_notices_repeat_terminals_within_and_across_notices() -> None:
    notices = [e for e in events() if e["type"] == "outreach.notice"]
    assert all(1 <= len(set(n["terminals"])) <= 4 for n in notices)
    assert any(len(n["terminals"]) > len(set(n["terminals"])) for n in notices)
    causes = Counter(n.get("cause", "violation") for n in notices)
    assert 0.08 < causes["registrar_missing"] / len(notices) < 0.25
    per_terminal = Counter((n["unit"], t) for n in notices for t in set(n["terminals"]))
    assert any(c > 1 for c in per_terminal.values())


def test_scale_multiplies_the_unit_events() -> None:
    def unit_events(scale: float) -> int:
        return sum('"clock.tick"' not in line for line in stream(years=(2018,), scale=scale))

    assert 15_000 < unit_events(1.0) < 30_000
    assert 1.6 < unit_events(2.0) / unit_events(1.0) < 2.4


def test_bad_lines_are_each_rejected_for_their_reason(tmp_path: Path) -> None:
    bad = demo.bad_lines(2018)
    assert bad == demo.bad_lines(2018) and len(bad) == 6
    reasons = []
    for line in bad[:3] + bad[4:5]:
        with pytest.raises(EventError) as err:
            parse_event(line)
        reasons.append(err.value.reason)
    assert reasons[0].startswith("malformed JSON")
    assert "naive timestamp" in reasons[1]
    assert "unknown event type" in reasons[2]
    assert "points: unknown field" in reasons[3]
    unknown_unit, orphan = parse_event(bad[3]), parse_event(bad[5])
    assert unknown_unit.type == "vuln.notice" and registry().unit(unknown_unit.unit) is None
    notices = {e.get("notice_id") for e in events() if e["type"] == "vuln.notice"}
    assert orphan.type == "vuln.feedback" and orphan.notice_id not in notices

    path = tmp_path / "demo.jsonl"
    written = demo.write_jsonl(demo.generate(registry(), years=(2018,), scale=0.1), path, bad=bad)
    text = path.read_text(encoding="utf-8").splitlines()
    assert written == len(text) and set(bad) <= set(text)
    assert text[997] == bad[0]  # slipped in after the 997th event
