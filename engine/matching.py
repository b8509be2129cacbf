"""Which occurrences an event counts for a rule (spec 5.4 counting keys)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.events import Event
from schemas.rulebook import Rule

# An event's fields (its `__dict__`) to its counting keys under one rule: `keyer(rule)`.
Keyer = Callable[[dict[str, Any]], tuple[str, ...]]


def keyer(rule: Rule) -> Keyer:
    """The counting keys of an event under `rule`, as a function of the event's fields, or ()
    when the rule's `match` excludes it; made once per rule (the compiled rulebook keeps it),
    so the rule's `match` and counting are looked up once, not per event.

    Keys carry the source unit so that jurisdiction items never merge two units' notices.
    The loader guarantees that a rule's counting fits its trigger, so the event's fields exist.
    """
    keys = _KEYS.get(rule.counting)
    if keys is None:  # an overdue rule's counting (per_signal): the remediation counts those

        def refused(fields: dict[str, Any]) -> tuple[str, ...]:
            raise ValueError(f"counting {rule.counting!r} cannot count a {fields['type']} event")

        return refused
    wanted = tuple(rule.match.items())
    if not wanted:
        return keys
    if len(wanted) == 1:  # most matches name one field: no loop per event
        ((name, value),) = wanted

        def matched_one(fields: dict[str, Any]) -> tuple[str, ...]:
            return () if fields.get(name) != value else keys(fields)

        return matched_one

    def matched(fields: dict[str, Any]) -> tuple[str, ...]:
        for name, value in wanted:
            if fields.get(name) != value:
                return ()
        return keys(fields)

    return matched


def _per_notice_terminal(fields: dict[str, Any]) -> tuple[str, ...]:
    # a terminal listed twice in one notice counts once (dict keeps first-seen order)
    # `prefix + t` is `f"{prefix}{t}"` for the strings the schema guarantees, without a frame
    prefix = f"{fields['unit']}/{fields['notice_id']}/"
    return tuple(map(prefix.__add__, dict.fromkeys(fields["terminals"])))


_KEYS: dict[str, Keyer] = {
    "once_per_year": lambda fields: ("",),
    "per_notice": lambda f: (f"{f['unit']}/{f['notice_id']}",),
    "per_notice_terminal": _per_notice_terminal,
    "per_year_terminal_finding": lambda f: (f"{f['unit']}/{f['terminal']}/{f['finding']}",),
    "per_year_system": lambda f: (f"{f['unit']}/{f['system']}",),
    "per_incident": lambda f: (f"{f['unit']}/{f['incident_id']}",),
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
