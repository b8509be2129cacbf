"""`tracker replay --rulebook ID`: the store's own event log re-run under another rulebook into a
scratch store, and the points per unit, year and indicator compared with the store's ledger.

It needs nothing but the store (like `status`): the event log, and the registry and rulebooks
recorded with it. The rulebook comes from `--rulebooks DIR` (a draft), else the store, else the
shipped rulebooks. The live store is only read. Semantics: docs/semantics.md, "What-if replay";
the pure part is engine/whatif.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from config.rulebooks import load_rulebooks
from engine.calendar import WorkCalendar
from engine.whatif import Difference, Refused, WhatIfError, differences, replay_log, what_if_config
from schemas.points import format_points
from schemas.rulebook import Rulebook
from sinks import MemoryStore, Store, open_store
from sinks.base import Batch
from sinks.dsn import NoStoreError, StoreHeldError, mask
from tracker import tables
from tracker.errors import UserError

WRITE_EVERY = 20_000  # outputs per scratch write: bounded memory on a large log


@dataclass
class WhatIf:
    rulebook: str
    assessments: list[tuple[int, str, str]]  # (year, tier, rulebook) the what-if changed
    differences: list[Difference]
    replayed: int = 0
    refused: list[Refused] = field(default_factory=list)


def choose_rulebook(
    book_id: str, recorded: Mapping[str, Rulebook], drafts: Path | None
) -> Rulebook:
    """A draft of that id, else the store's recorded rulebook, else the shipped one."""
    found: dict[str, Rulebook] = {**load_rulebooks(), **recorded, **_drafts(drafts)}
    book = found.get(book_id)
    if book is None:
        raise WhatIfError(
            f"unknown rulebook {book_id!r} (known: {', '.join(sorted(found))}; "
            "--rulebooks DIR loads a draft)"
        )
    return book


def _drafts(folder: Path | None) -> Mapping[str, Rulebook]:
    return load_rulebooks(folder) if folder is not None else {}


def what_if(
    store: Store,
    book_id: str,
    *,
    calendar: WorkCalendar,
    drafts: Path | None = None,
    unit: str | None = None,
    year: int | None = None,
    on_replayed: Callable[[int], None] | None = None,
) -> WhatIf:
    """Replay `store`'s event log with `book_id` assessing its tier (in `year`, else in every
    year the registry assesses that tier); the differences are those of `unit` and `year` when
    given. `on_replayed(n)`: told of every `n` events replayed (a progress display)."""
    config = store.load_config()
    if config is None:
        raise WhatIfError("the store holds no data yet: run `tracker ingest` first")
    registry, recorded = config
    chosen = choose_rulebook(book_id, recorded, drafts)
    rewritten, books = what_if_config(registry, recorded, chosen, unit=unit, year=year)
    actual = store.totals()  # before the log is streamed: a store streams one query at a time
    scratch = MemoryStore()
    scratch.save_config(rewritten, books)
    result = WhatIf(
        rulebook=chosen.id,
        assessments=sorted(
            {(a.year, a.tier, a.rulebook) for a in rewritten.assessments}
            - {(a.year, a.tier, a.rulebook) for a in registry.assessments}
        ),
        differences=[],
    )
    batch = Batch()  # outputs only: the scratch store's totals are all the diff needs
    events = store.logged_events()
    try:
        for logged, outcome in replay_log(rewritten, books, calendar, events):
            result.replayed += 1
            if outcome.status == "rejected":
                result.refused.append(
                    Refused(logged.event_id, logged.partition, logged.seq, outcome.reason or "")
                )
            batch.entries.extend(outcome.entries)
            batch.deadlines.extend(outcome.deadlines)
            batch.seen.extend(outcome.seen)
            if len(batch) >= WRITE_EVERY:
                scratch.write(batch)
                batch = Batch()
            if on_replayed is not None:
                on_replayed(1)
    finally:
        close = getattr(events, "close", None)  # a store's result stream blocks its queries
        if close is not None:
            close()
    scratch.write(batch)
    result.differences = differences(actual, scratch.totals(), unit=unit, year=year)
    return result


def open_event_log(dsn: str) -> Store:
    """The store itself: the event log is not among a worker's read views (sinks/remote.py)."""
    from sinks.remote import held_by_another_process

    held = (
        "the store's event log cannot be read while a worker holds the embedded store {}: "
        "stop the worker, or point --store at a ClickHouse server"
    )
    if held_by_another_process(dsn):
        raise UserError(held.format(mask(dsn)))
    try:
        return open_store(dsn, create=False)
    except StoreHeldError:  # a worker took the directory between the check and the open
        raise UserError(held.format(mask(dsn))) from None
    except NoStoreError as exc:
        raise UserError(f"{exc}; `tracker ingest` or `tracker worker` creates a store") from None


def report(result: WhatIf, *, as_json: bool) -> None:
    """The differences on stdout; events the what-if rules refuse, on stderr."""
    if result.refused:
        first = result.refused[0]
        print(
            f"tracker replay: {len(result.refused)} logged events are refused under "
            f"{result.rulebook} and deduct nothing there (first: {first.event_id}: {first.reason})",
            file=sys.stderr,
        )
    if as_json:
        print(json.dumps([d.as_json() for d in result.differences], ensure_ascii=False))
        return
    changed = ", ".join(f"{tier} {year} -> {book}" for year, tier, book in result.assessments)
    print(tables.printable(f"what-if: {changed or 'no assessment changed'}"))
    print(f"replayed {result.replayed} logged events")
    if result.differences:
        print(
            tables.render(
                ["unit", "year", "indicator", "actual", "what-if", "delta"],
                [
                    [
                        d.unit,
                        d.year,
                        d.indicator,
                        format_points(d.actual),
                        format_points(d.what_if),
                        _signed(d),
                    ]
                    for d in result.differences
                ],
            )
        )
    print(f"differences: {len(result.differences)}")


def _signed(d: Difference) -> str:
    text = format_points(d.delta)
    return text if d.delta <= 0 else f"+{text}"


def cmd_what_if(
    book_id: str,
    *,
    store: str | None,
    rulebooks: Path | None,
    holidays: Path | None,
    unit: str | None,
    year: int | None,
    as_json: bool,
) -> int:
    """`tracker replay --rulebook ID`: exit 0 whatever the differences (they are the answer)."""
    from config.holidays import official_calendar
    from tracker import options
    from tracker.errors import user_errors
    from tracker.progress import progress

    with user_errors():
        calendar = official_calendar(options.holidays_file(holidays))
        log = open_event_log(options.store_dsn(store))
        try:
            with progress(f"what-if {book_id}: events replayed") as advance:
                result = what_if(
                    log,
                    book_id,
                    calendar=calendar,
                    drafts=options.rulebooks_dir(rulebooks),
                    unit=unit,
                    year=year,
                    on_replayed=advance,
                )
        except WhatIfError as exc:
            raise UserError(str(exc)) from None
        finally:
            log.close()
    report(result, as_json=as_json)
    return 0
