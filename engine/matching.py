"""Which occurrences an event counts for a rule (spec 5.4 counting keys)."""

from __future__ import annotations

from schemas.events import (
    ControlFinding,
    CryptoNotice,
    Event,
    ExtranetNotice,
    IncidentReport,
    MlpsFinding,
    OutreachNotice,
    TerminalFinding,
    VulnNotice,
)
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


def describe(event: Event, key: str) -> str:
    """One line saying what happened, for the ledger's `reason`."""
    match event:
        case VulnNotice():
            what = f"major vulnerability notice {event.notice_id} ({event.system})"
        case OutreachNotice():
            what = f"outreach notice {event.notice_id} ({event.cause}), counted as {key}"
        case TerminalFinding():
            what = f"terminal {event.terminal}: {event.finding}"
        case ExtranetNotice():
            what = f"extranet access violation notice {event.notice_id}"
        case CryptoNotice():
            what = f"commercial cryptography not applied, notice {event.notice_id}"
        case IncidentReport():
            what = f"major security incident {event.incident_id}"
        case MlpsFinding():
            what = f"system {event.system} not compliant with graded protection"
        case ControlFinding():
            what = f"control missing: {event.control}"
        case _:
            what = event.type
    unit = getattr(event, "unit", "")
    return f"{what} of {unit}" if unit else what
