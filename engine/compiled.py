"""A rulebook flattened for fast lookup: rules by trigger, each with the caps that enclose it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from engine.matching import Keyer, keyer
from schemas.rulebook import Rule, Rulebook


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rulebook: str
    indicator: str
    item: str
    rule_id: str  # "<indicator>/<item>/<rule key>", unique within the rulebook
    key: str  # the rule's key within its item (trigger plus match), as the ledger shows it
    clause: str  # the item's clause text, verbatim, for reasons that cite it
    rule: Rule
    caps: tuple[str, ...]  # item cap, shared caps, indicator maximum — every enclosing cap
    # What every event counted under it reads, made once: `rule.points`, and its counting keys
    # as a function of the event's fields (engine/matching.py `keyer`).
    points: Decimal
    keys: Keyer


@dataclass(frozen=True, slots=True)
class CompiledRulebook:
    id: str
    by_trigger: Mapping[str, tuple[CompiledRule, ...]]
    cap_points: Mapping[str, Decimal]

    def covering(self, trigger: str, *, own: bool) -> CompiledRule | None:
        """The first rule of `trigger` that counts an event of the assessed unit itself (`own`)
        or, else, of a unit in its jurisdiction."""
        for rule in self.by_trigger.get(trigger, ()):
            if own or rule.rule.scope == "jurisdiction":
                return rule
        return None


def compile_rulebook(book: Rulebook) -> CompiledRulebook:
    by_trigger: dict[str, list[CompiledRule]] = {}
    cap_points: dict[str, Decimal] = {}
    for ind in book.indicators:
        ind_cap = f"indicator:{ind.id}"
        cap_points[ind_cap] = ind.max_points
        for shared in ind.shared_caps:
            cap_points[f"shared:{ind.id}/{shared.id}"] = shared.cap_points
        for item in ind.items:
            caps: list[str] = []
            if item.cap_points is not None:
                caps.append(f"item:{ind.id}/{item.number}")
                cap_points[caps[-1]] = item.cap_points
            caps += [f"shared:{ind.id}/{s.id}" for s in ind.shared_caps if item.number in s.items]
            caps.append(ind_cap)
            for rule in item.rules:
                compiled = CompiledRule(
                    rulebook=book.id,
                    indicator=ind.id,
                    item=item.number,
                    rule_id=f"{ind.id}/{item.number}/{rule.key}",
                    key=rule.key,
                    clause=item.clause,
                    rule=rule,
                    caps=tuple(caps),
                    points=rule.points,
                    keys=keyer(rule),
                )
                by_trigger.setdefault(rule.on, []).append(compiled)
    return CompiledRulebook(
        id=book.id,
        by_trigger={k: tuple(v) for k, v in by_trigger.items()},
        cap_points=cap_points,
    )
