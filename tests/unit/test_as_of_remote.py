"""As of an instant through a worker: `RemoteStore.as_of` asks the worker's read views
(streams/web.py) with `as_of`, and gets what the store itself answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from engine.clock import SHANGHAI
from sinks.remote import RemoteStore
from sinks.views import status_rows
from streams import web
from tests.unit.test_as_of import DUE, FB_RETRACT, NOTICE, ON_TIME, OUTREACH, TICK_AFTER, ingest


@dataclass
class Asked:
    query: dict[str, str]


def test_the_workers_views_answer_as_of(monkeypatch: pytest.MonkeyPatch) -> None:
    store = ingest([NOTICE, OUTREACH, ON_TIME, TICK_AFTER, FB_RETRACT])

    def through_the_views(path: str, data: bytes | None = None, **params: Any) -> bytes:
        asked = Asked({k: str(v) for k, v in params.items() if v is not None})
        return web._query(path, asked)(store)  # type: ignore[arg-type]  # only .query is read

    remote = RemoteStore("http://127.0.0.1:1")
    monkeypatch.setattr(remote, "_raw", through_the_views)
    config = store.load_config()
    assert config is not None
    ms = timedelta(milliseconds=1)
    later = datetime(2100, 1, 1, tzinfo=SHANGHAI)
    for at in (NOTICE.at, ON_TIME.at - ms, DUE, DUE + ms, FB_RETRACT.at, later):
        mine, theirs = store.as_of(at), remote.as_of(at)
        assert theirs.ledger("gat") == mine.ledger("gat"), at
        assert theirs.deadlines("gat", 2018) == mine.deadlines("gat", 2018), at
        assert theirs.totals() == mine.totals(), at
        assert theirs.event_unit_years() == mine.event_unit_years(), at
        assert status_rows(remote, config, as_of=at) == status_rows(store, config, as_of=at)


def test_a_bad_as_of_is_refused_by_the_views() -> None:
    with pytest.raises(web.BadRequest, match="offset"):
        web._query("ledger", Asked({"as_of": "2018-03-01T00:00:00"}))  # type: ignore[arg-type]
