"""`tracker status`: what it prints, from the store's answer (tracker/commands.py gives Typer
the command; tracker/cli.py runs a plain command line without Typer).

A ClickHouse store answers in SQL (sinks/clickhouse_status.py), without the contract models or
the engine; this module imports neither, nor Typer, so that the whole process is little more
than starting Python and the store (BENCHMARKS.md, "As-of status"). Any other store, and a store
a worker holds, answers through the general path, with the same output.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from sinks.dsn import NoStoreError, StoreHeldError, held_by_another_process
from tracker import tables
from tracker.errors import UserError
from tracker.instants import parse_instant


def show_status(
    store: str | None = None,
    unit: str | None = None,
    year: int | None = None,
    as_json: bool = False,
    as_of: str | None = None,
) -> int:
    """`tracker status`: points left per unit and year (the arguments are the command's)."""
    at = parse_instant(as_of)  # checked already, by Typer's callback or the plain reading
    dsn = store or _default_store()
    if as_json:
        print(_status(dsn, unit, year, at, answer="json")[0])
        return 0
    if unit is None:
        summaries, names = _summaries(dsn, year, at)
        print(
            tables.render(
                ["unit", "name", "year", "rulebook", "deducted", "open", "overdue"],
                [
                    [
                        r["unit"],
                        names.get(r["unit"], ""),
                        r["year"],
                        r["rulebook"] or "-",
                        r["deducted"],
                        opened,
                        overdue,
                    ]
                    for r, opened, overdue, total in summaries
                    if r["rulebook"] or total
                ],
            )
        )
        return 0
    rows, names = _status(dsn, unit, year, at)
    assert isinstance(rows, list)
    for r in rows:
        print(
            tables.printable(
                f"{r['unit']} {r['year']}  rulebook {r['rulebook'] or '-'}  "
                f"deducted {r['deducted']}"
            )
        )
        if r["indicators"]:
            print(
                tables.render(
                    ["indicator", "name", "max", "deducted", "remaining"],
                    [
                        [i["id"], i["name"], i["max"], i["deducted"], i["remaining"]]
                        for i in r["indicators"]
                    ],
                )
            )
        if r["deadlines"]:
            print(
                tables.render(
                    ["ref", "due", "status", "notice's own due"],
                    [
                        [d["ref"], d["due"], d["status"], d.get("notice_due") or ""]
                        for d in r["deadlines"]
                    ],
                )
            )
        print()
    return 0


def no_store(exc: NoStoreError) -> UserError:
    return UserError(
        f"{exc}; `tracker ingest` or `tracker worker` creates a store (or give --store)"
    )


def _default_store() -> str:
    from tracker import options

    return options.store_dsn(None)


# a status object without its deadlines; the counts of its open, overdue and all deadlines
Summary = tuple[dict[str, Any], int, int, int]


def _summaries(
    dsn: str, year: int | None, at: datetime | None
) -> tuple[list[Summary], dict[str, str]]:
    """What the every-unit table shows (`StatusQuery.summaries`), and the units' names."""
    found, names = _status(dsn, None, year, at, answer="summaries")
    assert isinstance(found, list)
    return found, names


def _status(
    dsn: str,
    unit: str | None,
    year: int | None,
    at: datetime | None,
    *,
    answer: Literal["documents", "json", "summaries"] = "documents",
) -> tuple[list[Any] | str, dict[str, str]]:
    """The status objects as `--json` prints them (`answer` "json": that JSON text itself;
    "summaries": each object with the counts of its deadlines, as the every-unit table shows
    them), and the units' names. A ClickHouse store that no other process holds answers in SQL
    (sinks/clickhouse_status.py); any other store, or a worker's, through the general path
    (sinks/views.py), which gives the same objects."""
    if dsn.startswith(("chdb:", "http:", "https:")) and not held_by_another_process(dsn):
        from sinks.clickhouse_status import NoConfigError, StatusQuery

        try:
            query = StatusQuery(dsn)
        except StoreHeldError:  # a worker took the directory since: read through it below
            pass
        except NoStoreError as exc:
            raise no_store(exc) from None
        else:
            try:
                config = query.config(as_of=at is not None)
                if answer == "json":
                    return query.json_text(config, unit, year, at), config.names
                if answer == "summaries":
                    return query.summaries(config, unit, year, at), config.names
                return query.documents(config, unit, year, at), config.names
            except NoConfigError as exc:
                raise UserError(str(exc)) from None
            except NoStoreError as exc:
                raise no_store(exc) from None
            finally:
                query.close()
    from sinks.views import status_rows
    from tracker.commands import open_for_reading, recorded_config

    reader = open_for_reading(dsn)
    try:
        registry, books = recorded_config(reader)
        found = status_rows(reader, (registry, books), unit=unit, year=year, as_of=at)
    finally:
        reader.close()
    documents = [r.model_dump(mode="json") for r in found]
    names = {u.id: u.name for u in registry.units}
    if answer == "json":
        return json.dumps(documents, ensure_ascii=False), names
    if answer == "summaries":
        return [_summary(d) for d in documents], names
    return documents, names


def _summary(document: dict[str, Any]) -> Summary:
    """A status object without its deadlines (as `StatusQuery.summaries` gives it), and their
    counts."""
    shown = {k: v for k, v in document.items() if k != "deadlines"}
    statuses = [d["status"] for d in document["deadlines"]]
    return shown, statuses.count("open"), statuses.count("overdue"), len(statuses)
