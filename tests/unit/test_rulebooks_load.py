"""The shipped rulebooks load, match the contract's table (spec section 4), quote their seeds
verbatim, and broken rulebooks are refused with a clear message."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from config import rulebooks
from schemas.points import format_points
from schemas.rulebook import Rulebook

# The repo is cloned next to `shared/`: /work/main/tests/unit/<this> -> /work/shared/seeds.
SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"

IDS = {
    "fj-2017-provincial-dept",
    "fj-2018-provincial-dept",
    "fj-2018-city-gov",
    "nd-2020-county-gov",
    "nd-2020-city-dept",
}

# Indicator maxima, in the order of the spec's section 4 table.
MAXIMA = {
    "fj-2017-provincial-dept": {"cii-netsec": "7", "emergency": "2", "secrecy": "4", "mlps": "2"},
    "fj-2018-provincial-dept": {"cii-netsec": "3", "emergency": "2", "secrecy": "3", "mlps": "2"},
    "fj-2018-city-gov": {"govsys-netsec": "6", "emergency": "4", "mlps": "5"},
    "nd-2020-county-gov": {"project-security": "10", "cii-netsec": "20"},
    "nd-2020-city-dept": {"mlps": "4", "cii-netsec": "6", "supervision-leads": "2"},
}


@cache
def books() -> dict[str, Rulebook]:
    return dict(rulebooks.load_rulebooks())


@cache
def seed_text(name: str) -> str:
    return (SEEDS / name).read_text(encoding="utf-8")


def test_the_five_rulebooks_are_shipped() -> None:
    assert set(books()) >= IDS


@pytest.mark.parametrize("book_id", sorted(MAXIMA))
def test_indicator_maxima_match_the_spec_table(book_id: str) -> None:
    book = books()[book_id]
    got = {ind.id: ind.max_points for ind in book.indicators}
    assert got == {k: Decimal(v) for k, v in MAXIMA[book_id].items()}


@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"seed texts not found at {SEEDS}")
@pytest.mark.parametrize("book_id", sorted(IDS))
def test_clauses_and_names_are_verbatim_in_the_seed(book_id: str) -> None:
    book = books()[book_id]
    text = seed_text(book.source.seed)
    for ind in book.indicators:
        # A composite name (监管处置情况·线索处理) joins two headings of the seed.
        for part in ind.name.split("·"):
            assert part in text, f"{book_id} {ind.id}: name part {part!r} not in the seed"
        for item in ind.items:
            assert item.clause in text, f"{book_id} {ind.id} item {item.number}: not verbatim"
        for un in ind.unruled:
            assert un.clause in text, f"{book_id} {ind.id} unruled {un.number}: not verbatim"


# The key clauses of spec section 4, one rule a row:
# "<rulebook>/<indicator>/<item> cap=<item cap or ->: <trigger[match]> <points> <counting> <scope> [deadline]".
KEY_RULES = [
    # 2018 province: real-name control missing, once a year
    "fj-2018-provincial-dept/cii-netsec/1 cap=-: control.finding[control=internet_terminal_realname] 1 once_per_year own",
    # 2017 province: the same control costs 2
    "fj-2017-provincial-dept/cii-netsec/1 cap=-: control.finding[control=internet_terminal_realname] 2 once_per_year own",
    # 2017 province: 0.5 per terminal per outreach notice, "直至扣完" = no item cap
    "fj-2017-provincial-dept/cii-netsec/2 cap=-: outreach.notice[cause=violation] 0.5 per_notice_terminal own",
    # 2018 province: 0.5 per terminal per outreach notice
    "fj-2018-provincial-dept/cii-netsec/2 cap=-: outreach.notice[cause=violation] 0.5 per_notice_terminal own",
    # 2017 province: unregistered terminal, once a year per terminal
    "fj-2017-provincial-dept/cii-netsec/4 cap=-: terminal.finding[finding=unregistered] 0.5 per_year_terminal_finding own",
    # 2018 province: terminal without antivirus, once a year per terminal
    "fj-2018-provincial-dept/cii-netsec/5 cap=-: terminal.finding[finding=antivirus_missing] 0.5 per_year_terminal_finding own",
    # 2018 province: 1 per vulnerability notice
    "fj-2018-provincial-dept/cii-netsec/6 cap=-: vuln.notice 1 per_notice own",
    # 2017 province: vulnerability not repaired with feedback within 2 weeks
    "fj-2017-provincial-dept/cii-netsec/7 cap=-: vuln.overdue 1 per_notice own calendar_days=14",
    # 2018 province: 1 per extranet notice
    "fj-2018-provincial-dept/cii-netsec/8 cap=-: extranet.notice 1 per_notice own",
    # 2017 province: graded protection not implemented, 2 once a year
    "fj-2017-provincial-dept/mlps/1 cap=-: mlps.finding 2 once_per_year own",
    # 2018 province: the same
    "fj-2018-provincial-dept/mlps/1 cap=-: mlps.finding 2 once_per_year own",
    # 2018 city: vulnerability notice and overdue share one item cap of 4 (two rows, one item)
    "fj-2018-city-gov/govsys-netsec/1 cap=4: vuln.notice 1 per_notice jurisdiction",
    "fj-2018-city-gov/govsys-netsec/1 cap=4: vuln.overdue 1 per_notice jurisdiction calendar_days=14",
    # 2018 city: both outreach causes, 0.2 per notice, together at most 2 (two rows, one item)
    "fj-2018-city-gov/govsys-netsec/2 cap=2: outreach.notice[cause=violation] 0.2 per_notice jurisdiction",
    "fj-2018-city-gov/govsys-netsec/2 cap=2: outreach.notice[cause=registrar_missing] 0.2 per_notice jurisdiction",
    # 2018 city: 1 per non-compliant system in the jurisdiction, "直至5分扣完"
    "fj-2018-city-gov/mlps/1 cap=5: mlps.finding 1 per_year_system jurisdiction",
    # 2020 county: graded protection, uncapped item under an indicator maximum of 10
    "nd-2020-county-gov/project-security/1 cap=-: mlps.finding 2 per_year_system jurisdiction",
    # 2020 county: vulnerability not rectified by its deadline, at most 8
    "nd-2020-county-gov/cii-netsec/1 cap=8: vuln.overdue 2 per_notice jurisdiction by_notice_due=True",
    # 2020 county: major incident, at most 4
    "nd-2020-county-gov/cii-netsec/2 cap=4: incident.report 4 per_incident jurisdiction",
    # 2020 county: crypto not applied, at most 4
    "nd-2020-county-gov/cii-netsec/3 cap=4: crypto.notice 2 per_notice jurisdiction",
    # 2020 county: extranet violation, at most 4
    "nd-2020-county-gov/cii-netsec/4 cap=4: extranet.notice 2 per_notice jurisdiction",
    # 2020 city department: graded protection, 2 per own system
    "nd-2020-city-dept/mlps/1 cap=-: mlps.finding 2 per_year_system own",
    # 2020 city department: vulnerability not rectified by its deadline, at most 2
    "nd-2020-city-dept/cii-netsec/1 cap=2: vuln.overdue 1 per_notice own by_notice_due=True",
    # 2020 city department: major incident, at most 2
    "nd-2020-city-dept/cii-netsec/2 cap=2: incident.report 2 per_incident own",
    # 2020 city department: crypto and extranet together at most 2 (two rows, one item)
    "nd-2020-city-dept/cii-netsec/3 cap=2: crypto.notice 1 per_notice own",
    "nd-2020-city-dept/cii-netsec/3 cap=2: extranet.notice 1 per_notice own",
    # 2020 city department: risk-warning signal not handled within 3 working days, at most 2
    "nd-2020-city-dept/supervision-leads/3(1) cap=2: supervision.overdue 0.5 per_signal own working_days=3",
]


def render_item(book_id: str, indicator: str, number: str) -> list[str]:
    """The rules of one shipped item, written like the KEY_RULES rows."""
    (item,) = [i for i in books()[book_id].indicator(indicator).items if i.number == number]
    cap = "-" if item.cap_points is None else format_points(item.cap_points)
    rows = []
    for r in item.rules:
        words = [r.key, format_points(r.points), r.counting, r.scope]
        if r.deadline is not None:
            words += [f"{k}={v}" for k, v in r.deadline.model_dump(exclude_none=True).items()]
        rows.append(f"{book_id}/{indicator}/{number} cap={cap}: " + " ".join(words))
    return rows


KEY_ITEMS = sorted({row.split(" cap=")[0] for row in KEY_RULES})


@pytest.mark.parametrize("where", KEY_ITEMS)
def test_key_clauses(where: str) -> None:
    book_id, indicator, number = where.split("/", 2)
    expected = [row for row in KEY_RULES if row.split(" cap=")[0] == where]
    assert render_item(book_id, indicator, number) == expected


# Each overdue rule's period, as `tracker rulebooks show` words it (contract 5.7).
PERIODS = {
    "fj-2017-provincial-dept/cii-netsec/7": "2 weeks, counted from the day after receipt",
    "fj-2018-provincial-dept/cii-netsec/7": "2 weeks, counted from the day after receipt",
    "fj-2018-city-gov/govsys-netsec/1": "2 weeks, counted from the day after receipt",
    "nd-2020-county-gov/cii-netsec/1": "by the notice's due",  # 未按期完成整改: no period stated
    "nd-2020-city-dept/cii-netsec/1": "by the notice's due",
    "nd-2020-city-dept/supervision-leads/3(1)": "3 working days",
}


def test_every_overdue_rule_states_its_period() -> None:
    found = {
        f"{b.id}/{ind.id}/{item.number}": rule.deadline.describe()
        for b in books().values()
        for ind in b.indicators
        for item in ind.items
        for rule in item.rules
        if rule.deadline is not None
    }
    assert found == PERIODS


def test_unruled_indicators_have_their_clauses_listed() -> None:
    for book in books().values():
        for ind in book.indicators:
            assert ind.items or ind.unruled, f"{book.id} {ind.id}: neither items nor unruled"
            for un in ind.unruled:
                assert un.why.strip()


# A small valid rulebook; each rejection case below breaks one thing in it.
BASE = """
id: t-broken
year: 2018
tier: provincial-dept
title: test
source: {seed: test, where: test}
indicators:
  - id: net
    name: 网络安全管理
    max_points: "3"
    items:
      - number: "6"
        clause: c6
        %(cap)s
        rules: %(rules)s
"""
GOOD_RULES = '[{on: vuln.notice, points: "1", counting: per_notice}]'
OVERDUE = '[{on: vuln.overdue, points: "1", counting: per_notice, deadline: %s}]'
SIGNAL_BY_DUE = '[{on: supervision.overdue, points: "1", counting: per_signal, deadline: {by_notice_due: true}}]'

REJECTIONS = [
    # a trigger that is not an event type of the contract
    (
        "unknown-trigger",
        {"rules": '[{on: vuln.published, points: "1", counting: per_notice}]'},
        ["items.0.rules.0.on", "vuln.notice"],
    ),
    # an item cap larger than its indicator's maximum (3)
    (
        "cap-above-max",
        {"cap": 'cap_points: "5"'},
        ["item 6: cap 5 is larger than the indicator maximum 3"],
    ),
    # an item with no rule: it belongs under `unruled`
    ("no-rules", {"rules": "[]"}, ["item 6: no trigger", "unruled"]),
    # points written as a YAML float (inexact) instead of a quoted decimal string
    (
        "float-points",
        {"rules": "[{on: vuln.notice, points: 0.5, counting: per_notice}]"},
        ["items.0.rules.0.points", "decimal string", "0.5"],
    ),
    # an overdue trigger without its deadline
    (
        "overdue-without-deadline",
        {"rules": '[{on: vuln.overdue, points: "1", counting: per_notice}]'},
        ["a deadline is required for *.overdue only"],
    ),
    # a counting key that does not fit the trigger
    (
        "counting-misfit",
        {"rules": '[{on: vuln.notice, points: "1", counting: per_signal}]'},
        ["counting 'per_signal' does not fit trigger 'vuln.notice'"],
    ),
    # the v1 period (at + N days exactly) is gone: say what to write instead
    (
        "v1-period",
        {"rules": OVERDUE % "{period_days: 14}"},
        ["period_days (contract v1: at + N days) is gone", "calendar_days", "by_notice_due"],
    ),
    # a stated period and "by the notice's due" at once
    (
        "two-periods",
        {"rules": OVERDUE % "{calendar_days: 14, by_notice_due: true}"},
        ["exactly one of calendar_days, working_days or by_notice_due"],
    ),
    # a risk-warning signal has no due of its own to be judged by
    (
        "signal-by-due",
        {"rules": SIGNAL_BY_DUE},
        ["only a vulnerability notice carries a due"],
    ),
]


@pytest.mark.parametrize(("case", "change", "expected"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_broken_rulebooks_are_rejected_clearly(
    case: str, change: dict[str, str], expected: list[str]
) -> None:
    text = BASE % ({"cap": "", "rules": GOOD_RULES} | change)
    with pytest.raises(rulebooks.RulebookError) as info:
        rulebooks.parse_rulebook(text, origin=f"{case}.yaml")
    message = str(info.value)
    assert message.startswith(f"{case}.yaml: ")
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


def test_the_base_of_the_rejection_cases_is_valid() -> None:
    book = rulebooks.parse_rulebook(BASE % {"cap": "", "rules": GOOD_RULES})
    assert book.indicator("net").items[0].rules[0].points == Decimal("1")
