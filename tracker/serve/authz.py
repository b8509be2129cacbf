"""Who may post what and read what (issue 10's role table; docs/access.md).

| role    | posts                                                      | reads                        |
|---------|------------------------------------------------------------|------------------------------|
| centre  | notices, findings, incidents, warnings, and retractions of | status, ledger, deadlines,   |
|         | its own events, for units in its scope                     | rejects, events of its scope |
| unit    | vuln.feedback, supervision.handled for units in its scope  | status, ledger, deadlines    |
| auditor | nothing                                                    | everything                   |
| ticker  | clock.tick                                                 | nothing                      |
| worker  | nothing (workers use Kafka, not this API)                  | nothing                      |

A scope is a unit and, for a centre, every unit below it in the registry (parent links); a
centre with no scope is the province's and covers every unit. A unit principal's scope is its own
unit, or its subtree when it was made with `--jurisdiction` (a city's administrator).

That a feedback's notice exists and is the unit's is the engine's check (contract 2: feedback for
an unknown notice of that unit is rejected, with a dead letter); authorization only makes sure
that the unit named is one the principal answers for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from schemas.events import ClockTick, Event, EventRetracted
from schemas.registry import Registry
from tracker.principals import Principal, Role

# What the centre posts: every notice, finding, incident and warning type (issue 10).
CENTRE_TYPES: Final = frozenset(
    {
        "vuln.notice",
        "outreach.notice",
        "terminal.finding",
        "extranet.notice",
        "crypto.notice",
        "incident.report",
        "mlps.finding",
        "control.finding",
        "supervision.warning",
    }
)
UNIT_TYPES: Final = frozenset({"vuln.feedback", "supervision.handled"})
POSTS: Final[dict[Role, frozenset[str]]] = {
    "centre": CENTRE_TYPES | {"event.retracted"},
    "unit": UNIT_TYPES,
    "auditor": frozenset(),
    "ticker": frozenset({"clock.tick"}),
    "worker": frozenset(),
}
Endpoint = Literal["status", "ledger", "deadlines", "rejects", "events"]
ENDPOINTS: Final[tuple[Endpoint, ...]] = ("status", "ledger", "deadlines", "rejects", "events")
READS: Final[dict[Role, frozenset[Endpoint]]] = {
    "centre": frozenset(ENDPOINTS),
    "unit": frozenset({"status", "ledger", "deadlines"}),
    "auditor": frozenset(ENDPOINTS),
    "ticker": frozenset(),
    "worker": frozenset(),
}
PostedByOf = Callable[[str], str | None]


def subtree(registry: Registry, unit_id: str) -> frozenset[str]:
    """The unit and every unit below it; empty for a unit the registry does not know."""
    if registry.unit(unit_id) is None:
        return frozenset()
    return frozenset(
        u.id for u in registry.units if u.id == unit_id or unit_id in registry.ancestors(u.id)
    )


def units_in_scope(principal: Principal, registry: Registry) -> frozenset[str] | None:
    """The units the principal answers for; None: every unit (the province)."""
    if principal.role == "auditor":
        return None
    if principal.role == "centre":
        return None if principal.scope is None else subtree(registry, principal.scope)
    if principal.role == "unit" and principal.scope is not None:
        if principal.jurisdiction:
            return subtree(registry, principal.scope)
        return frozenset({principal.scope}) if registry.unit(principal.scope) else frozenset()
    return frozenset()


def in_scope(principal: Principal, registry: Registry, unit_id: str) -> bool:
    units = units_in_scope(principal, registry)
    return units is None or unit_id in units


def may_post(
    principal: Principal, event: Event, registry: Registry, posted_by_of: PostedByOf
) -> str | None:
    """None when the principal may post the event, else why not and what it may do.

    `posted_by_of(event_id)` names who posted a logged event: a principal id, "" for an event
    that came without an envelope, or None when it is not logged."""
    return post_check(principal, registry, posted_by_of)(event)


def post_check(
    principal: Principal, registry: Registry, posted_by_of: PostedByOf
) -> Callable[[Event], str | None]:
    """`may_post` for the lines of one request: the principal's scope is worked out once (a
    subtree walks every unit's parents), when a line first needs it."""
    scope: list[frozenset[str] | None] = []

    def check(event: Event) -> str | None:
        if event.type not in POSTS[principal.role]:
            return f"{principal.id} may not post {event.type}: {may_do(principal)}"
        if isinstance(event, ClockTick):
            return None
        if not scope:
            scope.append(units_in_scope(principal, registry))
        if scope[0] is not None and event.unit not in scope[0]:
            return f"{principal.id} may not post for unit {event.unit!r}: {may_do(principal)}"
        if isinstance(event, EventRetracted):
            poster = posted_by_of(event.target_event_id)
            # Not logged: the engine rejects it as a retraction of an unknown event (contract 2).
            if poster in (None, principal.id):
                return None
            by = f"by {poster}" if poster else "without a principal (by an operator's tool)"
            return (
                f"{principal.id} may retract only events it posted; "
                f"{event.target_event_id!r} was posted {by}"
            )
        return None

    return check


def may_read(
    principal: Principal, endpoint: Endpoint, registry: Registry, unit: str | None = None
) -> str | None:
    """None when the principal may read the endpoint (for `unit`, when one is asked for)."""
    if endpoint not in READS[principal.role]:
        return f"{principal.id} may not read /v1/{endpoint}: {may_do(principal)}"
    if unit is not None and not in_scope(principal, registry, unit):
        return f"{principal.id} may not read unit {unit!r}: {may_do(principal)}"
    return None


def scope_words(principal: Principal) -> str:
    if principal.scope is None:
        return "every unit of the province"
    if principal.role == "centre" or principal.jurisdiction:
        return f"{principal.scope} and the units below it"
    return principal.scope


def may_do(principal: Principal) -> str:
    """What the principal may do, in one sentence (every refusal ends with it)."""
    where = scope_words(principal)
    match principal.role:
        case "centre":
            return (
                f"a centre may post {', '.join(sorted(CENTRE_TYPES))} and event.retracted "
                f"(of events it posted) for {where}, and read status, ledger, deadlines, "
                f"rejects and events of {where}"
            )
        case "unit":
            return (
                f"a unit may post vuln.feedback and supervision.handled for the notices and "
                f"signals of {where}, and read the status, ledger and deadlines of {where}"
            )
        case "auditor":
            return "an auditor may post nothing and read everything (status, ledger, deadlines, rejects, events)"
        case "ticker":
            return "a ticker may post clock.tick only, and read nothing"
        case _:
            return "a worker has nothing to do over HTTP: workers read and write Kafka topics"
