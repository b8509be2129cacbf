"""What the `tracker serve` tests share: the demo registry, one event of every type, an app with
a principal of every kind."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from schemas.events import EVENT_TYPES
from schemas.registry import Registry
from sinks import MemoryStore, Store
from tracker.principals import PrincipalStore
from tracker.serve.app import create_app
from tracker.serve.embedded import EmbeddedService
from tracker.serve.limits import Limits

REGISTRY: Registry = load_registry(DEMO_REGISTRY)
BOOKS = dict(load_rulebooks())
AT = "2018-03-01T10:00:00+08:00"

# Extra fields of each type (contract section 2), enough for a valid event.
FIELDS: dict[str, dict[str, Any]] = {
    "vuln.notice": {"notice_id": "V-1", "system": "OA"},
    "vuln.feedback": {"notice_id": "V-1"},
    "outreach.notice": {"notice_id": "O-1", "terminals": ["t1"]},
    "terminal.finding": {"terminal": "t1", "finding": "unregistered"},
    "extranet.notice": {"notice_id": "E-1"},
    "crypto.notice": {"notice_id": "C-1", "system": "OA"},
    "incident.report": {"incident_id": "I-1"},
    "mlps.finding": {"system": "OA"},
    "control.finding": {"control": "internet_terminal_realname"},
    "supervision.warning": {"signal_id": "S-1"},
    "supervision.handled": {"signal_id": "S-1"},
    "event.retracted": {"target_event_id": "x-1", "reason": "posted in error"},
    "clock.tick": {},
}
assert set(FIELDS) == EVENT_TYPES  # a new event type must get a row in every matrix


def event(kind: str, unit: str | None, event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"event_id": event_id or f"{kind}-{unit}", "type": kind, "at": AT}
    if kind != "clock.tick":
        out["unit"] = unit
    return {**out, **FIELDS[kind], **extra}


def jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)


# principal name -> (role, scope, jurisdiction)
PRINCIPALS: dict[str, tuple[str, str | None, bool]] = {
    "centre": ("centre", None, False),  # the province's security centre
    "centre_fz": ("centre", "fj.fz", False),  # a centre for Fuzhou's subtree
    "unit_gat": ("unit", "fj.gat", False),  # a provincial department
    "unit_fz": ("unit", "fj.fz", False),  # a city government, its own unit only
    "city_fz": ("unit", "fj.fz", True),  # the city's administrator, with its jurisdiction
    "auditor": ("auditor", None, False),
    "ticker": ("ticker", None, False),
    "worker": ("worker", None, False),
}


@dataclass
class Served:
    client: TestClient
    service: EmbeddedService
    principals: PrincipalStore
    tokens: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def post(self, who: str, events: list[dict[str, Any]] | str, **kw: Any) -> Any:
        body = events if isinstance(events, str) else jsonl(events)
        headers = {**self.headers(who), "Content-Type": "application/x-ndjson"}
        return self.client.post("/v1/events", content=body.encode(), headers=headers, **kw)

    def get(self, who: str, path: str, **params: Any) -> Any:
        return self.client.get(path, headers=self.headers(who), params=params)


def serve(store: Store, tmp: Path, limits: Limits | None = None) -> Served:
    principals = PrincipalStore(tmp / "principals.json")
    tokens = {}
    for name, (role, scope, jurisdiction) in PRINCIPALS.items():
        _, tokens[name] = principals.add(role, scope, name, jurisdiction=jurisdiction)
    store.save_config(REGISTRY, BOOKS)
    # the intake journal beside the test's files (a memory store keeps it in memory)
    journal = None if isinstance(store, MemoryStore) else tmp / "journal"
    service = EmbeddedService(store, REGISTRY, BOOKS, official_calendar(), journal_dir=journal)
    app = create_app(service, principals, limits or Limits())
    return Served(TestClient(app), service, principals, tokens)
