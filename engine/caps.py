"""Nested caps of one assessment (unit, year, rulebook) and the claims that draw on them.

Applied = min(requested, headroom of every enclosing cap), greedily in the claims' original order
(spec 5.5). When a claim is withdrawn, later claims may get the freed headroom: the allocation is
recomputed in order and every claim whose applied amount changed gets a reversal and a new entry,
so the ledger equals processing the stream without the withdrawn cause (spec 5.10).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from hashlib import sha256 as _sha256

from engine.chain import _text, fixed_fields, instant_field, ledger_digest, link, points_field
from engine.compiled import CompiledRule
from schemas.ledger import LedgerEntry, trusted_entry

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
    # None: the events it cites (`event_ids`) and no others, as nearly every claim of a dense
    # stream is: no dict of its own (~130 bytes a claim) until `backers` makes one.
    supporters: dict[str, None] | None
    form: str  # the canonical form's fields its rule and assessment fix (engine/chain.py)
    applied: Decimal = ZERO
    entry_id: str = ""
    version: int = 0
    # Its place in its assessment's `claims`: numbers that rise along the list (claims are only
    # appended, and removed), so a withdrawal finds it by bisection, not by a scan of them all.
    order: int = 0

    def backers(self) -> dict[str, None]:
        """`supporters` as a dict to change, made from `event_ids` the first time."""
        supporters = self.supporters
        if supporters is None:
            supporters = self.supporters = dict.fromkeys(self.event_ids)
        return supporters


# What every claim of one rule in one assessment shares (`_per_rule`): the claim ids' prefix, the
# entries' fixed fields, a capped entry's reason ending and its form from `requested` to
# `reverses`, and the values of a capped entry as a dict to copy (the fields that vary set after).
PerRule = tuple[str, str, str, str, dict[str, object]]


@dataclass(slots=True)
class Assessment:
    unit: str
    year: int
    rulebook: str
    cap_points: dict[str, Decimal]
    used: dict[str, Decimal] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    appended: int = 0  # claims ever appended: the next one's `order`
    by_key: dict[tuple[str, str], Claim] = field(default_factory=dict)
    generations: dict[tuple[str, str], int] = field(default_factory=dict)
    # per rule, built once (`_per_rule`): what its claims and their entries share
    prefixes: dict[str, PerRule] = field(default_factory=dict)
    seq: int = 0  # the last ledger `seq` of this (unit, year): kept and forgotten with it
    head: str = ""  # the chain value of that entry (engine/chain.py)
    # Rules with no headroom left under their caps: a claim of one is capped at 0 without asking
    # `headroom`. Caps only fill up until a claim's amount is given back (`_use` of a negative
    # amount), which forgets them all. Not kept in a checkpoint: a restored one starts empty.
    spent: set[str] = field(default_factory=set)

    def headroom(self, caps: tuple[str, ...]) -> Decimal:
        room: Decimal | None = None
        for cap in caps:  # a plain loop: this runs for every counted occurrence
            left = self.cap_points[cap] - self.used.get(cap, ZERO)
            if room is None or left < room:
                room = left
        assert room is not None  # every rule has at least its indicator maximum
        return room

    def _use(self, caps: tuple[str, ...], amount: Decimal) -> None:
        if amount < ZERO:
            self.spent.clear()
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
                existing.backers()[supporter] = None
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
        key: tuple[str, str] | None = None,
    ) -> Claim:
        """`open_claim` of a key not counted yet (the caller looked, with `key`, the rule's id
        and `count_key`, which it passes on so that it is made once): its claim and entry."""
        rule_id = rule.rule_id
        if key is None:
            key = (rule_id, count_key)
        generations = assessment.generations
        generation = generations.get(key, 0)
        generations[key] = generation + 1
        made = assessment.prefixes.get(rule_id)
        if made is None:
            made = assessment.prefixes[rule_id] = _per_rule(assessment, rule)
        prefix, form, capped_at_zero, zero_fields, capped_values = made
        requested = rule.points
        # engine/ids.py `digest`, inline: this runs for every counted occurrence
        claim_id = _sha256(f"{prefix}\x1f{count_key}\x1f{generation}".encode()).hexdigest()[:24]
        supporters: dict[str, None] | None
        if supporter is None:
            supporters = {}  # an overdue claim: no event asserts it
        elif len(event_ids) == 1 and event_ids[0] == supporter:
            supporters = None  # the event it cites (`Claim.supporters`)
        else:
            supporters = {supporter: None}
        order = assessment.appended
        assessment.appended = order + 1
        if rule_id in assessment.spent:  # no headroom left: see `Assessment.spent`
            applied = ZERO
        else:
            applied = max(ZERO, min(requested, assessment.headroom(rule.caps)))
            if applied is ZERO:
                assessment.spent.add(rule_id)
        capped = applied is ZERO
        # positional: this runs for every counted occurrence; a capped claim is its own entry
        # (version 1) at once, a claim with points gets its entry from `_write`
        claim = Claim(
            claim_id,
            rule,
            count_key,
            requested,
            source_unit,
            event_ids,
            effective_at,
            reason,
            supporters,
            form,
            ZERO,
            claim_id if capped else "",
            1 if capped else 0,
            order,
        )
        assessment.claims.append(claim)
        assessment.by_key[key] = claim
        if not capped:
            assessment._use(rule.caps, applied)
            self._write(assessment, claim, applied)
            return claim
        # Capped at 0, nearly every entry of a dense stream, so `_write`, `_append`,
        # `ledger_digest` and `link` are spelled out here in one frame (the same canonical form
        # and chain: tests/unit/test_engine_golden.py pins every byte). Adding ZERO to what the
        # caps used changes nothing (they hold sums that started at ZERO, so no exponent above 0,
        # and never -0), and the reason's ending is the rule's own, made once.
        seq = assessment.seq = assessment.seq + 1
        reason = reason + capped_at_zero
        if len(event_ids) == 1:
            ids = f"{len(event_ids[0])}:{event_ids[0]}"
        else:
            ids = "".join(map(_text, event_ids))
        seq_text = str(seq)
        entry_digest = _sha256(  # a claim id is 24 characters
            f"24:{claim_id}{len(seq_text)}:{seq_text}{form}"
            f"{len(count_key)}:{count_key}{len(source_unit)}:{source_unit}{len(ids)}:{ids}"
            f"{zero_fields}{instant_field(effective_at)}{len(reason)}:{reason}".encode()
        ).hexdigest()
        chain = assessment.head = _sha256(f"{assessment.head}{entry_digest}".encode()).hexdigest()
        # A copy of the rule's capped entry, its varying fields set: a third of the time of the
        # 19-key dict built whole (the copy keeps the keys' order, which is the model's).
        values = capped_values.copy()
        values["entry_id"] = claim_id
        values["seq"] = seq
        values["count_key"] = count_key
        values["source_unit"] = source_unit
        values["event_ids"] = event_ids
        values["effective_at"] = effective_at
        values["reason"] = reason
        values["digest"] = entry_digest
        values["chain"] = chain
        self.entries.append(trusted_entry(values))
        return claim

    def withdraw_claim(
        self, assessment: Assessment, claim: Claim, *, at: datetime, why: str, cause: str
    ) -> None:
        """Reverse a claim and hand its headroom to later claims of the same caps."""
        self._reverse(assessment, claim, at=at, why=why, cause=cause)
        claims = assessment.claims
        position = bisect_left(claims, claim.order, key=_order)
        if position == len(claims) or claims[position] is not claim:
            position = claims.index(claim)  # not reached: `order` rises along the list
        del claims[position]
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
        self.entries.append(trusted_entry(values))

    def drain(self) -> list[LedgerEntry]:
        out, self.entries = self.entries, []
        return out


def _order(claim: Claim) -> int:
    return claim.order


def _per_rule(assessment: Assessment, rule: CompiledRule) -> PerRule:
    """What every claim of one rule in one assessment shares, made once: the claim ids' prefix,
    the entries' fixed fields (engine/chain.py), and for an entry capped at 0 the end of its
    reason, its canonical form's fields from `requested` to `reverses`, and its values (those
    that vary are set on a copy: `Ledger.count`)."""
    unit, year, book = assessment.unit, assessment.year, assessment.rulebook
    points = rule.rule.points
    capped_values: dict[str, object] = {
        "entry_id": "",
        "seq": 0,
        "unit": unit,
        "year": year,
        "rulebook": book,
        "indicator": rule.indicator,
        "item": rule.item,
        "rule": rule.key,
        "count_key": "",
        "source_unit": "",
        "event_ids": (),
        "requested": rule.points,
        "applied": ZERO,
        "capped": rule.points > ZERO,
        "reverses": None,
        "effective_at": None,
        "reason": "",
        "digest": "",
        "chain": "",
    }
    return (
        f"{book}\x1f{unit}\x1f{year}\x1f{rule.rule_id}",
        fixed_fields(unit, year, book, rule.indicator, rule.item, rule.key),
        f"; capped: {ZERO} of {points} applied" if points > ZERO else "",
        f"{points_field(points)}{points_field(ZERO)}{'1:1' if points > ZERO else '1:0'}~",
        capped_values,
    )
