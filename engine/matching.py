"""Which occurrences an event counts for a rule (spec 5.4 counting keys)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.events import Event
from schemas.rulebook import Rule


def count_keys(rule: Rule, event: Event) -> tuple[str, ...]:
    """The counting keys of `event` under `rule`, or () when the rule's `match` excludes it.

    Keys carry the source unit so that jurisdiction items never merge two units' notices.
    The loader guarantees that a rule's counting fits its trigger, so the event's fields exist.
    """
    fields = event.__dict__  # hot path: one dict lookup per field instead of isinstance chains
    for name, wanted in rule.match.items():
        if fields.get(name) != wanted:
            return ()
    keys = _KEYS.get(rule.counting)
    if keys is None:
        raise ValueError(f"counting {rule.counting!r} cannot count a {event.type} event")
    return keys(fields.get("unit", ""), fields)


def _per_notice_terminal(unit: str, fields: dict[str, Any]) -> tuple[str, ...]:
    # a terminal listed twice in one notice counts once (dict keeps first-seen order)
    notice = fields["notice_id"]
    return tuple(f"{unit}/{notice}/{t}" for t in dict.fromkeys(fields["terminals"]))


_KEYS: dict[str, Callable[[str, dict[str, Any]], tuple[str, ...]]] = {
    "once_per_year": lambda unit, fields: ("",),
    "per_notice": lambda unit, fields: (f"{unit}/{fields['notice_id']}",),
    "per_notice_terminal": _per_notice_terminal,
    "per_year_terminal_finding": lambda unit, f: (f"{unit}/{f['terminal']}/{f['finding']}",),
    "per_year_system": lambda unit, fields: (f"{unit}/{fields['system']}",),
    "per_incident": lambda unit, fields: (f"{unit}/{fields['incident_id']}",),
}


_WHAT: dict[str, Callable[[Any], str]] = {
    "vuln.notice": lambda e: f"major vulnerability notice {e.notice_id} ({e.system})",
    "outreach.notice": lambda e: f"outreach notice {e.notice_id} ({e.cause})",
    "terminal.finding": lambda e: f"terminal {e.terminal}: {e.finding}",
    "extranet.notice": lambda e: f"extranet access violation notice {e.notice_id}",
    "crypto.notice": lambda e: f"commercial cryptography not applied, notice {e.notice_id}",
    "incident.report": lambda e: f"major security incident {e.incident_id}",
    "mlps.finding": lambda e: f"system {e.system} not compliant with graded protection",
    "control.finding": lambda e: f"control missing: {e.control}",
}


def describe(event: Event, key: str) -> str:
    """One line saying what happened, for the ledger's `reason`."""
    kind = event.type
    what = _WHAT[kind](event) if kind in _WHAT else kind
    if kind == "outreach.notice":
        what += f", counted as {key}"
    unit = event.__dict__.get("unit", "")
    return f"{what} of {unit}" if unit else what
