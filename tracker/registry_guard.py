"""A new unit registry must not silently drop what the store's events were deducted under.

`tracker ingest` (and the worker, before it records its registry) call
`check_registry_change(store, registry, replace=...)`: a registry that drops units or assessments
the store has events for - or moves such a unit to another tier or parent - is refused unless the
operator says `--replace-registry`. The store records every registry change it saves
(`registry_changes`: old and new hash, time, the new registry); a refused one changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.registry import Registry
from sinks.base import Store


class RegistryChangeError(ValueError):
    """The new registry would take away what the stored events need; one line for the user."""


def registry_conflicts(
    old: Registry, new: Registry, event_unit_years: Iterable[tuple[str, int]]
) -> list[str]:
    """What `new` drops or changes of `old` that events of these (unit, year)s were counted
    under; empty when the change is safe (it only adds, or touches units without events)."""
    unit_years = {(u, y) for u, y in event_unit_years if old.unit(u) is not None}
    units = sorted({u for u, _ in unit_years})
    dropped = [u for u in units if new.unit(u) is None]
    moved = []
    for uid in units:
        before, after = old.unit(uid), new.unit(uid)
        if before and after and (before.tier, before.parent) != (after.tier, after.parent):
            moved.append(uid)
    # an assessment is needed by an event of its year from a unit of its tier or below one
    # (jurisdiction items count the events of descendants)
    needed: set[tuple[int, str]] = set()
    for uid, year in unit_years:
        for chain_id in (uid, *old.ancestors(uid)):
            unit = old.unit(chain_id)
            if unit is not None:
                needed.add((year, unit.tier))
    kept = {(a.year, a.tier, a.rulebook) for a in new.assessments}
    lost = [
        f"{a.tier} {a.year} ({a.rulebook})"
        for a in sorted(old.assessments, key=lambda a: (a.year, a.tier))
        if (a.year, a.tier) in needed and (a.year, a.tier, a.rulebook) not in kept
    ]
    problems = []
    if dropped:
        problems.append(f"drops units the store has events for: {_few(dropped)}")
    if moved:
        problems.append(f"changes the tier or parent of units with events: {_few(moved)}")
    if lost:
        problems.append(f"drops or changes assessments the store has events for: {_few(lost)}")
    return problems


def check_registry_change(store: Store, registry: Registry, *, replace: bool = False) -> list[str]:
    """Refuse (RegistryChangeError) a registry that conflicts with the store's events, unless
    `replace`; returns the conflicts that `replace` overrode (empty when there were none)."""
    stored = store.load_config()
    if stored is None or stored[0] == registry:
        return []
    problems = registry_conflicts(stored[0], registry, store.event_unit_years())
    if problems and not replace:
        raise RegistryChangeError(
            f"the unit registry {'; '.join(problems)} (their deductions would change); "
            "pass --replace-registry to replace the store's registry anyway"
        )
    return problems


def _few(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
