"""Every ruled item of every shipped rulebook, driven by events, with its clause cited.

Each row: rulebook, indicator, item, the events (one occurrence repeated `n` times), the expected
points after one occurrence and after `n` (where the item's cap or the indicator maximum bites).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from config.holidays import official_calendar
from config.rulebooks import load_rulebooks
from engine import Engine
from schemas.events import Event, parse_event
from schemas.registry import Registry

BOOKS = load_rulebooks()
REGISTRY = Registry.model_validate(
    {
        "assessments": [{"year": b.year, "tier": b.tier, "rulebook": b.id} for b in BOOKS.values()],
        "units": [
            {"id": "p", "name": "省直单位", "tier": "provincial-dept"},
            {"id": "c", "name": "设区市", "tier": "city-gov"},
            {"id": "c.k", "name": "县", "tier": "county-gov", "parent": "c"},
            {"id": "c.k.x", "name": "县下属", "tier": "county-gov", "parent": "c.k"},
            {"id": "c.d", "name": "市直部门", "tier": "city-dept", "parent": "c"},
        ],
    }
)
CALENDAR = official_calendar()
Make = Callable[[int, int, str], list[dict[str, Any]]]  # (i, year, unit) -> event bodies


def notice(kind: str, **fields: Any) -> Make:
    """One event of `kind` on March (i+1); "{i}" in a field makes each occurrence distinct."""

    def fill(value: Any, i: int) -> Any:
        if isinstance(value, str):
            return value.format(i=i)
        return [fill(v, i) for v in value] if isinstance(value, list) else value

    def make(i: int, year: int, unit: str) -> list[dict[str, Any]]:
        at = f"{year}-03-{i + 1:02d}T10:00:00+08:00"
        return [
            {"type": kind, "unit": unit, "at": at, **{k: fill(v, i) for k, v in fields.items()}}
        ]

    return make


def overdue(kind: str, ref: str) -> Make:
    """A notice or signal, then a tick a month later: nothing was remediated. A vulnerability
    notice carries a due 10 days on, which the 2020 clauses (按期) judge it by."""

    def make(i: int, year: int, unit: str) -> list[dict[str, Any]]:
        first = {
            "type": kind,
            "unit": unit,
            "at": f"{year}-03-{i + 2:02d}T10:00:00+08:00",
            ref: f"R{i}",
        }
        if kind == "vuln.notice":
            first["system"] = "OA"
            first["due"] = f"{year}-03-{i + 12:02d}T10:00:00+08:00"
        return [first, {"type": "clock.tick", "at": f"{year}-05-{i + 1:02d}T00:00:00+08:00"}]

    return make


VULN = notice("vuln.notice", notice_id="V{i}", system="OA")
OUTREACH = notice("outreach.notice", notice_id="O{i}", terminals=["T{i}"])
REGISTRAR = notice(
    "outreach.notice", notice_id="R{i}", terminals=["T{i}"], cause="registrar_missing"
)
UNREGISTERED = notice("terminal.finding", terminal="T{i}", finding="unregistered")
ANTIVIRUS = notice("terminal.finding", terminal="T{i}", finding="antivirus_missing")
EXTRANET = notice("extranet.notice", notice_id="X{i}")
CRYPTO = notice("crypto.notice", notice_id="C{i}", system="OA")
INCIDENT = notice("incident.report", incident_id="I{i}")
MLPS = notice("mlps.finding", system="系统{i}")
REALNAME = notice("control.finding", control="internet_terminal_realname")

ROWS = [
    # -- fj-2017-provincial-dept (seed 001) ---------------------------------------------------
    # 1.实时对本单位连接互联网终端进行实名认证…未落实的，扣2分 (once a year)
    ("fj-2017-provincial-dept", "cii-netsec", "1", "p", "p", REALNAME, 3, "2", "2"),
    # 2.违规外联…按每台违规外联终端扣0.5分计算，直至扣完 (7-point indicator)
    ("fj-2017-provincial-dept", "cii-netsec", "2", "p", "p", OUTREACH, 20, "0.5", "7"),
    # 4.未下载政务网接入注册软件进行注册，每台终端扣0.5分
    ("fj-2017-provincial-dept", "cii-netsec", "4", "p", "p", UNREGISTERED, 2, "0.5", "1"),
    # 5.如没有安装杀毒软件，每台终端扣0.5分
    ("fj-2017-provincial-dept", "cii-netsec", "5", "p", "p", ANTIVIRUS, 2, "0.5", "1"),
    # 6.存在重大安全漏洞，被…通报一次的，扣1分，直至扣完
    ("fj-2017-provincial-dept", "cii-netsec", "6", "p", "p", VULN, 9, "1", "7"),
    # 7.接到通报2周内未按要求修复反馈一次，扣1分 (the notice itself also costs 1 under item 6)
    (
        "fj-2017-provincial-dept",
        "cii-netsec",
        "7",
        "p",
        "p",
        overdue("vuln.notice", "notice_id"),
        1,
        "1",
        "1",
    ),
    # 8.违反《福建省电子政务外网接入安全技术规范》…通报一次的，扣1分
    ("fj-2017-provincial-dept", "cii-netsec", "8", "p", "p", EXTRANET, 2, "1", "2"),
    # 信息系统安全等级保护: 未落实的，扣2分 (once)
    ("fj-2017-provincial-dept", "mlps", "1", "p", "p", MLPS, 3, "2", "2"),
    # -- fj-2018-provincial-dept (seed 000 附件2) ---------------------------------------------
    # 1.…未落实的，扣1分 (2018: 1 point, once a year)
    ("fj-2018-provincial-dept", "cii-netsec", "1", "p", "p", REALNAME, 2, "1", "1"),
    # 2.違規外聯…按每臺違規外聯終端扣0.5分計算，直至扣完 (3-point indicator)
    ("fj-2018-provincial-dept", "cii-netsec", "2", "p", "p", OUTREACH, 8, "0.5", "3"),
    ("fj-2018-provincial-dept", "cii-netsec", "4", "p", "p", UNREGISTERED, 1, "0.5", "0.5"),
    ("fj-2018-provincial-dept", "cii-netsec", "5", "p", "p", ANTIVIRUS, 1, "0.5", "0.5"),
    ("fj-2018-provincial-dept", "cii-netsec", "6", "p", "p", VULN, 4, "1", "3"),
    (
        "fj-2018-provincial-dept",
        "cii-netsec",
        "7",
        "p",
        "p",
        overdue("vuln.notice", "notice_id"),
        1,
        "1",
        "1",
    ),
    ("fj-2018-provincial-dept", "cii-netsec", "8", "p", "p", EXTRANET, 4, "1", "3"),
    # registrar_missing is not the province's outreach clause
    ("fj-2018-provincial-dept", "cii-netsec", "2", "p", "p", REGISTRAR, 1, "0", "0"),
    ("fj-2018-provincial-dept", "mlps", "1", "p", "p", MLPS, 2, "2", "2"),
    # -- fj-2018-city-gov: 本轄區內 (jurisdiction), posted by a grandchild --------------------
    # 1.…被通報的，1次扣1分；接到通報2周內未按要求修復反饋的，1次扣1分，直至4分扣完
    ("fj-2018-city-gov", "govsys-netsec", "1", "c.k.x", "c", VULN, 6, "1", "4"),
    (
        "fj-2018-city-gov",
        "govsys-netsec",
        "1",
        "c.k",
        "c",
        overdue("vuln.notice", "notice_id"),
        3,
        "2",
        "4",
    ),
    # 2.…未安裝違規外聯注冊器或違規外聯…1次扣0.2分，直至2分扣完 (both causes, per notice)
    ("fj-2018-city-gov", "govsys-netsec", "2", "c.k", "c", OUTREACH, 12, "0.2", "2"),
    ("fj-2018-city-gov", "govsys-netsec", "2", "c", "c", REGISTRAR, 11, "0.2", "2"),
    # 每發現1個信息系統不符合的，扣1分，直至5分扣完
    ("fj-2018-city-gov", "mlps", "1", "c.k", "c", MLPS, 7, "1", "5"),
    # -- nd-2020-county-gov: 辖区内 ------------------------------------------------------------
    # 1.…未按期完成整改的，一次扣2分，最高扣8分 (the notice alone costs nothing)
    ("nd-2020-county-gov", "cii-netsec", "1", "c.k", "c.k", VULN, 1, "0", "0"),
    (
        "nd-2020-county-gov",
        "cii-netsec",
        "1",
        "c.k.x",
        "c.k",
        overdue("vuln.notice", "notice_id"),
        5,
        "2",
        "8",
    ),
    # 2.发生重大网络安全案（事）件，发生一起扣4分，最高扣4分
    ("nd-2020-county-gov", "cii-netsec", "2", "c.k", "c.k", INCIDENT, 2, "4", "4"),
    # 3.未落实商用密码应用…每次扣2分，最高扣4分
    ("nd-2020-county-gov", "cii-netsec", "3", "c.k", "c.k", CRYPTO, 3, "2", "4"),
    # 4.违反…接入政务外网…每次扣2分；最高扣4分
    ("nd-2020-county-gov", "cii-netsec", "4", "c.k.x", "c.k", EXTRANET, 3, "2", "4"),
    # 信息化项目建设安全管理: 每发现1个信息系统不符合的扣2分，扣完为止 (10)
    ("nd-2020-county-gov", "project-security", "1", "c.k", "c.k", MLPS, 6, "2", "10"),
    # -- nd-2020-city-dept: own unit -------------------------------------------------------------
    (
        "nd-2020-city-dept",
        "cii-netsec",
        "1",
        "c.d",
        "c.d",
        overdue("vuln.notice", "notice_id"),
        3,
        "1",
        "2",
    ),
    ("nd-2020-city-dept", "cii-netsec", "2", "c.d", "c.d", INCIDENT, 2, "2", "2"),
    # 3.商用密码…每次扣1分；…接入政务外网…每次扣1分；最高扣2分 (together)
    ("nd-2020-city-dept", "cii-netsec", "3", "c.d", "c.d", CRYPTO, 3, "1", "2"),
    ("nd-2020-city-dept", "cii-netsec", "3", "c.d", "c.d", EXTRANET, 3, "1", "2"),
    # 本单位…每发现1个信息系统不符合的扣2分，扣完为止 (4)
    ("nd-2020-city-dept", "mlps", "1", "c.d", "c.d", MLPS, 3, "2", "4"),
    # （1）未在3个工作日内对系统推送的风险预警信号进行处理的，每发现一条，扣0.5分，最高扣2分
    (
        "nd-2020-city-dept",
        "supervision-leads",
        "3(1)",
        "c.d",
        "c.d",
        overdue("supervision.warning", "signal_id"),
        6,
        "0.5",
        "2",
    ),
]


def _events(make: Make, n: int, year: int, unit: str) -> list[Event]:
    bodies = [b for i in range(n) for b in make(i, year, unit)]
    return [parse_event(json.dumps({"event_id": f"e{k}", **b})) for k, b in enumerate(bodies)]


def _item_total(events: list[Event], assessed: str, indicator: str, item: str) -> str:
    eng = Engine(REGISTRY, BOOKS, CALENDAR)
    total = Decimal(0)
    for event in events:
        for e in eng.apply(event).entries:
            if (e.unit, e.indicator, e.item) == (assessed, indicator, item):
                total += e.applied
    return f"{total.normalize():f}" if total else "0"


@pytest.mark.parametrize(
    ("book", "indicator", "item", "poster", "assessed", "make", "n", "one", "many"),
    ROWS,
    ids=[f"{r[0]}:{r[1]}#{r[2]}x{r[6]}" for r in ROWS],
)
def test_item(
    book: str,
    indicator: str,
    item: str,
    poster: str,
    assessed: str,
    make: Make,
    n: int,
    one: str,
    many: str,
) -> None:
    year = BOOKS[book].year
    clause = next(i.clause for i in BOOKS[book].indicator(indicator).items if i.number == item)
    assert clause  # every row cites a transcribed clause
    assert _item_total(_events(make, 1, year, poster), assessed, indicator, item) == one
    assert _item_total(_events(make, n, year, poster), assessed, indicator, item) == many


def test_every_ruled_item_has_a_row() -> None:
    covered = {(r[0], r[1], r[2]) for r in ROWS}
    items = {
        (b.id, ind.id, it.number)
        for b in BOOKS.values()
        for ind in b.indicators
        for it in ind.items
    }
    assert items <= covered, sorted(items - covered)
