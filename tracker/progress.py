"""Progress for long work (`ingest`, `demo`, `replay`) on stderr, and only when stderr is a
terminal: in a pipe, a log file or a test nothing is drawn and the wrappers cost nothing (the
line iterator itself is handed back). Nothing goes to stdout, which keeps its summary lines.

A display is live while the work runs; text printed to stderr meanwhile goes above it. Text
printed to stdout goes above it too when stdout is the terminal as well (rich routes it).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from tracker.tables import printable

T = TypeVar("T")
# Lines between two updates of the display: rich takes a lock per update, which at ~25k lines/s
# would cost more than the ~2% allowed; the display refreshes 10 times a second anyway.
EVERY_LINES = 512
# A redraw costs ~1.4 ms of the GIL: 4 a second is ~0.6% of an ingest (rich's default 10: 1.4%).
REFRESH_PER_S = 4


def shown() -> bool:
    """Whether progress is drawn: stderr is a terminal (FORCE_COLOR and friends do not count)."""
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class _Rate(ProgressColumn):
    """Lines (or items) per second, from the `lines` field: the bar itself may count bytes."""

    def render(self, task: Task) -> Text:
        count = task.fields.get("lines", task.completed)
        elapsed = task.elapsed or 0.0
        rate = f"{count / elapsed:,.0f}/s" if elapsed > 0.5 else "…/s"
        unit = task.fields.get("unit", "lines")
        return Text(f"{count:,.0f} {unit} {rate}" if unit else f"{count:,.0f} {rate}")


def file_size(handle: object) -> int | None:
    """The size of what `handle` reads when it is a regular file (a file argument, or stdin
    redirected from one), else None: a pipe's length is unknown."""
    try:
        info = os.fstat(handle.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _label(text: str) -> str:
    # file names come from outside: shown, never acted on (as terminal codes or rich markup)
    return escape(printable(text))


@contextlib.contextmanager
def _display(total: float | None, *, by_bytes: bool) -> Iterator[Progress]:
    display = _progress(total, by_bytes=by_bytes)
    # a display left running (an iterator never finished, an exit on an error) would leave the
    # terminal's cursor hidden: stopped at exit at the latest
    atexit.register(display.stop)
    try:
        with display:
            yield display
    finally:
        atexit.unregister(display.stop)


def _progress(total: float | None, *, by_bytes: bool) -> Progress:
    console = Console(file=sys.stderr, stderr=True)
    columns: list[ProgressColumn | str] = [TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), TaskProgressColumn()]
    else:
        columns.insert(0, SpinnerColumn())
    if by_bytes:
        columns.append(DownloadColumn())
    columns.append(_Rate())
    columns.append(TimeRemainingColumn() if total is not None else TimeElapsedColumn())
    return Progress(
        *columns,
        console=console,
        redirect_stdout=_stdout_is_a_terminal(),
        redirect_stderr=True,
        refresh_per_second=REFRESH_PER_S,
    )


def _stdout_is_a_terminal() -> bool:
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def track_lines(lines: Iterable[bytes], *, label: str, total_bytes: int | None) -> Iterator[bytes]:
    """`lines` unchanged; on a terminal a bar advances by their bytes (percentage and ETA when
    `total_bytes` is known, e.g. a regular file's size), with the lines read and lines/s."""
    if not shown():
        return iter(lines)
    return _tracked(lines, label, total_bytes, len, "lines")


def track_items(
    items: Iterable[T], *, label: str, total: int | None = None, unit: str = "lines"
) -> Iterator[T]:
    """`items` unchanged, counted on a terminal (the demo's generated lines, for instance)."""
    if not shown():
        return iter(items)
    return _tracked(items, label, total, None, unit)


def _tracked(
    items: Iterable[T],
    label: str,
    total: int | None,
    size: Callable[[T], int] | None,
    unit: str,
) -> Iterator[T]:
    with _display(total, by_bytes=size is not None) as display:
        task = display.add_task(_label(label), total=total, lines=0, unit=unit)
        count = done = pending = 0
        try:
            for item in items:
                count += 1
                pending += size(item) if size is not None else 1
                if count % EVERY_LINES == 0:
                    done += pending
                    display.update(task, completed=done, lines=count)
                    pending = 0
                yield item
        finally:
            display.update(task, completed=done + pending, lines=count)


@contextlib.contextmanager
def progress(label: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """`advance(n)` for work counted by the caller (records replayed, events sent); a bar when
    `total` is known, else a spinner with the count and rate. A no-op off a terminal."""
    if not shown():
        yield _nothing
        return
    with _display(total, by_bytes=False) as display:
        task = display.add_task(_label(label), total=total, lines=0, unit="")
        count = 0
        last = 0.0

        def advance(n: int) -> None:
            nonlocal count, last
            count += n
            now = time.monotonic()
            if now - last >= 0.05:  # callers may advance per event: update at most 20 times/s
                last = now
                display.update(task, completed=count, lines=count)

        try:
            yield advance
        finally:
            display.update(task, completed=count, lines=count)


def _nothing(n: int) -> None:
    """advance() off a terminal."""
