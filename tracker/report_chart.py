"""Geometry of the audit report's two inline SVG drawings: the remaining points per indicator as
step lines, and the notices' deadlines as bars, on one time axis.

Drawn on the server so the page needs no script and no library, prints as it shows, and a test
can count what was drawn. Coordinates are plain numbers in the SVG's own units (the page scales
the drawing with its viewBox); every text is left to the template, which escapes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from engine.clock import SHANGHAI
from schemas.ledger import DeadlineState
from schemas.points import format_points
from tracker.report_series import Series

WIDTH = 960
LEFT, RIGHT = 56, 16
CHART_HEIGHT, CHART_TOP, CHART_BOTTOM = 300, 14, 34
ROW_HEIGHT, TIMELINE_TOP = 26, 8
# Colour-blind-safe (Okabe-Ito), in the rulebook's indicator order.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
STATUS_COLOURS = {
    "open": "#56B4E9",
    "met": "#009E73",
    "late": "#E69F00",
    "overdue": "#D55E00",
    "withdrawn": "#999999",
}


@dataclass(frozen=True, slots=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True, slots=True)
class Dot:
    x: float
    y: float
    at: str  # the instant, for the dot's tooltip
    remaining: str


@dataclass(frozen=True, slots=True)
class Line:
    indicator: str
    name: str
    colour: str
    path: str
    stroke_width: float
    dots: tuple[Dot, ...]
    remaining: str  # where the line ends: the indicator's remaining points now


@dataclass(frozen=True, slots=True)
class Bar:
    ref: str
    status: str
    colour: str
    y: float
    x: float
    width: float
    feedback_x: float | None


@dataclass(frozen=True, slots=True)
class Drawing:
    width: int
    chart_height: int
    timeline_height: int
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    lines: tuple[Line, ...]
    bars: tuple[Bar, ...]
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int


class TimeAxis:
    """Maps instants of [start, end] onto [LEFT, WIDTH - RIGHT]."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.start, self.end = start, max(end, start)
        self.span_s = max((self.end - self.start).total_seconds(), 1.0)

    def x(self, at: datetime) -> float:
        share = (at - self.start).total_seconds() / self.span_s
        return round(LEFT + min(max(share, 0.0), 1.0) * (WIDTH - LEFT - RIGHT), 1)

    def month_ticks(self) -> tuple[Tick, ...]:
        ticks = []
        cur = self.start.astimezone(SHANGHAI).replace(day=1, hour=0, minute=0, second=0)
        while cur <= self.end:
            if cur >= self.start:
                label = f"{cur.year}年1月" if cur.month == 1 else f"{cur.month}月"
                ticks.append(Tick(self.x(cur), label))
            cur = cur.replace(year=cur.year + cur.month // 12, month=cur.month % 12 + 1)
        return tuple(ticks)


def draw(
    series: Sequence[Series], deadlines: Sequence[DeadlineState], start: datetime, end: datetime
) -> Drawing:
    """Both drawings on the time axis [start, end]; `end` is stretched to the last instant shown
    (an overdue of a December notice is dated in January)."""
    instants = [p.at for s in series for p in s.points]
    instants += [t for d in deadlines for t in (d.due, d.feedback_at) if t is not None]
    axis = TimeAxis(start, max([end, *instants]))
    top, bottom = CHART_TOP, CHART_HEIGHT - CHART_BOTTOM
    y_max = max((s.max_points for s in series), default=Decimal(1))

    def y(points: Decimal) -> float:
        return round(bottom - float(points / y_max) * (bottom - top), 1)

    lines = []
    for n, s in enumerate(series):
        xs = [axis.x(p.at) for p in s.points]
        ys = [y(p.remaining) for p in s.points]
        path = f"M{xs[0]},{ys[0]}"
        for x_i, y_i in zip(xs[1:], ys[1:], strict=True):
            path += f" H{x_i} V{y_i}"
        path += f" H{axis.x(axis.end)}"
        dots = tuple(
            Dot(x_i, y_i, p.at.astimezone(SHANGHAI).isoformat(), format_points(p.remaining))
            for x_i, y_i, p in zip(xs, ys, s.points, strict=True)
        )
        lines.append(
            Line(
                s.indicator,
                s.name,
                PALETTE[n % len(PALETTE)],
                path,
                _stroke_width(n, len(series)),
                dots,
                format_points(s.points[-1].remaining),
            )
        )
    bars = []
    for n, d in enumerate(deadlines):
        x0, x1 = axis.x(d.noticed_at), axis.x(d.due)
        bars.append(
            Bar(
                d.ref,
                d.status,
                STATUS_COLOURS.get(d.status, "#999999"),
                TIMELINE_TOP + n * ROW_HEIGHT,
                x0,
                max(x1 - x0, 2.0),
                axis.x(d.feedback_at) if d.feedback_at is not None else None,
            )
        )
    return Drawing(
        width=WIDTH,
        chart_height=CHART_HEIGHT,
        timeline_height=TIMELINE_TOP + len(deadlines) * ROW_HEIGHT + CHART_BOTTOM,
        x_ticks=axis.month_ticks(),
        y_ticks=tuple(Tick(y(v), format_points(v)) for v in _steps(y_max)),
        lines=tuple(lines),
        bars=tuple(bars),
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        plot_top=top,
        plot_bottom=bottom,
    )


def _stroke_width(n: int, count: int) -> float:
    """Indicators often share a level (two maxima of 2, two used-up lines at 0), and a later
    line would hide an earlier one: the earlier the wider, drawn first, so each shows as a band."""
    return 2.0 + 1.5 * (count - 1 - n)


def _steps(y_max: Decimal) -> list[Decimal]:
    """Gridlines at whole points, every 1, 2 or 5 so there are at most ~10."""
    step = next(s for s in (Decimal(1), Decimal(2), Decimal(5), Decimal(10)) if y_max / s <= 10)
    out, v = [], Decimal(0)
    while v <= y_max:
        out.append(v)
        v += step
    return out
