"""Which occurrences an event counts for a rule (spec 5.4 counting keys)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
        fused = _MATCHED_ONE.get(rule.counting)
        if fused is not None:
            return fused(name, value)

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


def _terminal_finding_if(name: str, value: object) -> Keyer:
    """`per_year_terminal_finding` under a match of one field, in one function: every terminal
    finding (half of a dense stream) is asked once per rule of its type."""

    def keys(f: dict[str, Any]) -> tuple[str, ...]:
        if f.get(name) != value:
            return ()
        return (f"{f['unit']}/{f['terminal']}/{f['finding']}",)

    return keys


def _notice_terminal_if(name: str, value: object) -> Keyer:
    """`per_notice_terminal` under a match of one field, in one function (outreach notices)."""

    def keys(f: dict[str, Any]) -> tuple[str, ...]:
        if f.get(name) != value:
            return ()
        prefix = f"{f['unit']}/{f['notice_id']}/"
        return tuple(map(prefix.__add__, dict.fromkeys(f["terminals"])))

    return keys


# `_KEYS`' keyer and a match of one field, fused, for the countings of the most frequent events:
# one call per rule and event instead of two (the same keys: test_matching.py compares them)
_MATCHED_ONE: dict[str, Callable[[str, object], Keyer]] = {
    "per_year_terminal_finding": _terminal_finding_if,
    "per_notice_terminal": _notice_terminal_if,
}

_KEYS: dict[str, Keyer] = {
    "once_per_year": lambda fields: ("",),
    "per_notice": lambda f: (f"{f['unit']}/{f['notice_id']}",),
    "per_notice_terminal": _per_notice_terminal,
    "per_year_terminal_finding": lambda f: (f"{f['unit']}/{f['terminal']}/{f['finding']}",),
    "per_year_system": lambda f: (f"{f['unit']}/{f['system']}",),
    "per_incident": lambda f: (f"{f['unit']}/{f['incident_id']}",),
}


# The ledger reason of a counted event, what happened and whose (spec 5.4), from the event's
# fields (its `__dict__`, read without the model's attribute hook) and its counting key: per
# event type, one f-string each, since every counted event makes one. Outreach notices name the
# key (one notice counts once per terminal); the others do not.
Reason = Callable[[dict[str, Any], str], str]
_REASONS: dict[str, Reason] = {
    "vuln.notice": lambda f, key: (
        f"major vulnerability notice {f['notice_id']} ({f['system']}) of {f['unit']}"
    ),
    "outreach.notice": lambda f, key: (
        f"outreach notice {f['notice_id']} ({f['cause']}), counted as {key} of {f['unit']}"
    ),
    "terminal.finding": lambda f, key: f"terminal {f['terminal']}: {f['finding']} of {f['unit']}",
    "extranet.notice": lambda f, key: (
        f"extranet access violation notice {f['notice_id']} of {f['unit']}"
    ),
    "crypto.notice": lambda f, key: (
        f"commercial cryptography not applied, notice {f['notice_id']} of {f['unit']}"
    ),
    "incident.report": lambda f, key: f"major security incident {f['incident_id']} of {f['unit']}",
    "mlps.finding": lambda f, key: (
        f"system {f['system']} not compliant with graded protection of {f['unit']}"
    ),
    "control.finding": lambda f, key: f"control missing: {f['control']} of {f['unit']}",
}


def describe(fields: dict[str, Any], key: str) -> str:
    """One line saying what happened, for the ledger's `reason`: `reasoner`'s, for any event."""
    return reasoner(fields["type"], fields.get("unit", ""))(fields, key)


def reasoner(kind: str, unit: str) -> Reason:
    """`describe` for the events of type `kind` of `unit`, looked up once per event."""
    found = _REASONS.get(kind)
    if found is not None and unit:
        return found
    return _unusual(kind, unit, found)  # its closures' cells made only here, not per event


def _unusual(kind: str, unit: str, found: Reason | None) -> Reason:
    if found is None:  # a type with no text of its own
        return lambda fields, key: f"{kind} of {unit}" if unit else kind
    # no unit (the schema gives every counted event one): the text without its " of "
    return lambda fields, key: found({**fields, "unit": ""}, key).removesuffix(" of ")
