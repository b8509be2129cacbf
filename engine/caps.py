"""Nested caps of one assessment (unit, year, rulebook) and the claims that draw on them.

Applied = min(requested, headroom of every enclosing cap), greedily in the claims' original order
(spec 5.5). When a claim is withdrawn, later claims may get the freed headroom: the allocation is
recomputed in order and every claim whose applied amount changed gets a reversal and a new entry,
so the ledger equals processing the stream without the withdrawn cause (spec 5.10).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from engine.chain import fixed_fields, ledger_digest, link
from engine.compiled import CompiledRule
from engine.ids import digest
from schemas.ledger import LedgerEntry, trusted

ZERO = Decimal(0)


@dataclass(slots=True, eq=False)
class Claim:
    """One counted occurrence of a rule (a counting key) and its current ledger entry."""

    claim_id: str
    rule: CompiledRule
    count_key: str
    requested: Decimal
    source_unit: str
    event_ids: tuple[str, ...]
    effective_at: datetime
    reason: str
    # Accepted events still asserting this occurrence, in arrival order (a dict, not a set, so
    # that an entry re-cited after a retraction names them in the same order on every replay).
    supporters: dict[str, None]
    form: str  # the canonical form's fields its rule and assessment fix (engine/chain.py)
    applied: Decimal = ZERO
    entry_id: str = ""
    version: int = 0


@dataclass(slots=True)
class Assessment:
    unit: str
    year: int
    rulebook: str
    cap_points: dict[str, Decimal]
    used: dict[str, Decimal] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    by_key: dict[tuple[str, str], Claim] = field(default_factory=dict)
    generations: dict[tuple[str, str], int] = field(default_factory=dict)
    # per rule, built once: its claims' id prefix, their entries' fixed fields (chain.py), and
    # the end of the reason of an entry capped at 0
    prefixes: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    seq: int = 0  # the last ledger `seq` of this (unit, year): kept and forgotten with it
    head: str = ""  # the chain value of that entry (engine/chain.py)

    def headroom(self, caps: tuple[str, ...]) -> Decimal:
        room: Decimal | None = None
        for cap in caps:  # a plain loop: this runs for every counted occurrence
            left = self.cap_points[cap] - self.used.get(cap, ZERO)
            if room is None or left < room:
                room = left
        assert room is not None  # every rule has at least its indicator maximum
        return room

    def _use(self, caps: tuple[str, ...], amount: Decimal) -> None:
        for cap in caps:
            self.used[cap] = self.used.get(cap, ZERO) + amount


Routes = tuple[tuple[Assessment, CompiledRule], ...]  # where one kind of event counts


class Ledger:
    """Owns every assessment's caps and turns claim changes into ledger entries."""

    def __init__(self) -> None:
        self.entries: list[LedgerEntry] = []

    def open_claim(
        self,
        assessment: Assessment,
        rule: CompiledRule,
        count_key: str,
        *,
        source_unit: str,
        event_ids: tuple[str, ...],
        effective_at: datetime,
        reason: str,
        supporter: str | None,
    ) -> Claim | None:
        """Count one occurrence; an already counted key only gains a supporter (returns None)."""
        existing = assessment.by_key.get((rule.rule_id, count_key))
        if existing is not None:
            if supporter is not None:
                existing.supporters[supporter] = None
            return None
        return self.count(
            assessment,
            rule,
            count_key,
            source_unit,
            event_ids,
            effective_at,
            reason,
            supporter,
        )

    def count(
        self,
        assessment: Assessment,
        rule: CompiledRule,
        count_key: str,
        source_unit: str,
        event_ids: tuple[str, ...],
        effective_at: datetime,
        reason: str,
        supporter: str | None,
    ) -> Claim:
        """`open_claim` of a key not counted yet (the caller looked): its claim and entry."""
        key = (rule.rule_id, count_key)
        generation = assessment.generations.get(key, 0)
        assessment.generations[key] = generation + 1
        made = assessment.prefixes.get(rule.rule_id)
        if made is None:
            unit, year, book = assessment.unit, assessment.year, assessment.rulebook
            made = assessment.prefixes[rule.rule_id] = (
                f"{book}\x1f{unit}\x1f{year}\x1f{rule.rule_id}",
                fixed_fields(unit, year, book, rule.indicator, rule.item, rule.key),
                f"; capped: {ZERO} of {rule.rule.points} applied"
                if rule.rule.points > ZERO
                else "",
            )
        prefix, form, capped_at_zero = made
        requested = rule.rule.points
        claim = Claim(  # positional: this runs for every counted occurrence
            digest(prefix, count_key, generation),
            rule,
            count_key,
            requested,
            source_unit,
            event_ids,
            effective_at,
            reason,
            {supporter: None} if supporter is not None else {},
            form,
        )
        applied = max(ZERO, min(requested, assessment.headroom(rule.caps)))
        assessment.claims.append(claim)
        assessment.by_key[key] = claim
        if applied is not ZERO:
            assessment._use(rule.caps, applied)
            self._write(assessment, claim, applied)
            return claim
        # Capped at 0, nearly every entry of a dense stream: adding ZERO to what the caps used
        # changes nothing (they hold sums that started at ZERO, so no exponent above 0, and
        # never -0), and the reason's ending is the rule's own, made once (`_write` otherwise).
        claim.entry_id = claim.claim_id
        claim.version = 1
        self._append(
            assessment,
            claim,
            claim.claim_id,
            requested,
            ZERO,
            None,
            effective_at,
            reason + capped_at_zero,
            event_ids,
        )
        return claim

    def withdraw_claim(
        self, assessment: Assessment, claim: Claim, *, at: datetime, why: str, cause: str
    ) -> None:
        """Reverse a claim and hand its headroom to later claims of the same caps."""
        self._reverse(assessment, claim, at=at, why=why, cause=cause)
        position = assessment.claims.index(claim)
        del assessment.claims[position]
        del assessment.by_key[(claim.rule.rule_id, claim.count_key)]
        if claim.applied:  # a claim capped at 0 frees nothing: no one can gain
            assessment._use(claim.rule.caps, -claim.applied)
            self._reallocate(assessment, position, at=at, cause=cause)

    def recite(
        self,
        assessment: Assessment,
        claim: Claim,
        event_ids: tuple[str, ...],
        *,
        at: datetime,
        why: str,
        cause: str,
    ) -> None:
        """Re-issue a claim's entry, same amount, citing `event_ids` (spec 5.15): the ledger is
        append-only, so the entry citing an event that no longer supports it is reversed."""
        self._reverse(assessment, claim, at=at, why=why, cause=cause)
        claim.event_ids = event_ids
        self._write(assessment, claim, claim.applied, why=why)

    def _reallocate(self, assessment: Assessment, start: int, *, at: datetime, cause: str) -> None:
        """Greedy allocation again from `start`: claims before it are unaffected by later ones."""
        later = assessment.claims[start:]
        if all(c.applied == c.requested for c in later):
            return
        for claim in later:
            assessment._use(claim.rule.caps, -claim.applied)
        for claim in later:
            applied = max(ZERO, min(claim.requested, assessment.headroom(claim.rule.caps)))
            assessment._use(claim.rule.caps, applied)
            if applied != claim.applied:
                why = f"re-evaluated: headroom freed by {cause}"
                self._reverse(assessment, claim, at=at, why=why, cause=cause)
                self._write(assessment, claim, applied, why=why)

    def _reverse(
        self, assessment: Assessment, claim: Claim, *, at: datetime, why: str, cause: str
    ) -> None:
        self._append(
            assessment,
            claim,
            f"{claim.entry_id}~r",  # each entry is reversed at most once
            -claim.requested,
            -claim.applied,
            claim.entry_id,
            at,
            f"reversal: {why}",
            (*claim.event_ids, cause) if cause not in claim.event_ids else claim.event_ids,
        )

    def _write(
        self, assessment: Assessment, claim: Claim, applied: Decimal, why: str | None = None
    ) -> None:
        claim.entry_id = (
            claim.claim_id if not claim.version else f"{claim.claim_id}.{claim.version}"
        )
        claim.version += 1
        claim.applied = applied
        requested = claim.requested
        reason = claim.reason if why is None else f"{claim.reason} ({why})"
        if applied < requested:
            reason += f"; capped: {applied} of {requested} applied"
        self._append(
            assessment,
            claim,
            claim.entry_id,
            requested,
            applied,
            None,
            claim.effective_at,
            reason,
            claim.event_ids,
        )

    def _append(
        self,
        assessment: Assessment,
        claim: Claim,
        entry_id: str,
        requested: Decimal,
        applied: Decimal,
        reverses: str | None,
        effective_at: datetime,
        reason: str,
        event_ids: tuple[str, ...],
    ) -> None:
        seq = assessment.seq = assessment.seq + 1
        rule = claim.rule
        capped = reverses is None and applied < requested
        digest = ledger_digest(
            entry_id,
            seq,
            claim.form,
            claim.count_key,
            claim.source_unit,
            event_ids,
            requested,
            applied,
            capped,
            reverses,
            effective_at,
            reason,
        )
        chain = assessment.head = link(assessment.head, digest)
        values = {
            "entry_id": entry_id,
            "seq": seq,
            "unit": assessment.unit,
            "year": assessment.year,
            "rulebook": assessment.rulebook,
            "indicator": rule.indicator,
            "item": rule.item,
            "rule": rule.key,
            "count_key": claim.count_key,
            "source_unit": claim.source_unit,
            "event_ids": event_ids,
            "requested": requested,
            "applied": applied,
            "capped": capped,
            "reverses": reverses,
            "effective_at": effective_at,
            "reason": reason,
            "digest": digest,
            "chain": chain,
        }
        self.entries.append(trusted(LedgerEntry, values))

    def drain(self) -> list[LedgerEntry]:
        out, self.entries = self.entries, []
        return out
