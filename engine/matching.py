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
    for name, wanted in rule.match.items():
        if getattr(event, name, None) != wanted:
            return ()
    counting = rule.counting
    if counting == "once_per_year":
        return ("",)
    fields = event.__dict__  # hot path: one dict lookup per field instead of isinstance chains
    unit = fields.get("unit", "")
    if counting == "per_notice":
        return (f"{unit}/{fields['notice_id']}",)
    if counting == "per_notice_terminal":
        # a terminal listed twice in one notice counts once (dict keeps first-seen order)
        notice = fields["notice_id"]
        return tuple(f"{unit}/{notice}/{t}" for t in dict.fromkeys(fields["terminals"]))
    if counting == "per_year_terminal_finding":
        return (f"{unit}/{fields['terminal']}/{fields['finding']}",)
    if counting == "per_year_system":
        return (f"{unit}/{fields['system']}",)
    if counting == "per_incident":
        return (f"{unit}/{fields['incident_id']}",)
    raise ValueError(f"counting {counting!r} cannot count a {event.type} event")


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
    what = _WHAT.get(event.type, lambda e: str(e.type))(event)
    if event.type == "outreach.notice":
        what += f", counted as {key}"
    unit = getattr(event, "unit", "")
    return f"{what} of {unit}" if unit else what
