"""`tracker audit verify`: is the store's ledger the one the rules made from the posted events?
(issue 11, item 1; docs/audit.md)

Four checks, each reporting the first row it finds wrong, named by table, chain and position:

1. the event log's hash chains (per partition, in `seq` order) and each event's intake signature
   (its own, or its proof in a signed batch: config/intake_signatures.py);
2. the ledger's hash chains (per unit and year, in `seq` order; `seq` runs 1, 2, ... without gaps);
3. the signed chain heads: each signature, under a public key from a trusted source (never the
   store), and each head against the chain recomputed from the rows, so that a table rewritten
   with recomputed hashes is caught; every chain's last row must be covered by a signed head;
4. a replay of the event log through the engine, one engine per partition as the worker runs it
   (engine/whatif.replay_log), compared entry by entry with the stored ledger.

The same checks run on a store and on an exported bundle (tracker/audit_bundle.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from config.intake_signatures import IntakeSignatures
from config.signing import Verifier
from engine import WorkCalendar
from engine.chain import GENESIS, entry_digest, event_digest, event_message, ledger_key, link
from engine.whatif import WhatIfError, replay_log
from schemas.ledger import ChainHead, LedgerEntry, LoggedEvent
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from tracker.audit_heads import check_heads, forged_head, heads_of, in_scope

REBUILD = (
    "rebuild it: `tracker ingest` its events (the JSONL they were posted as, or the `raw` column "
    "of its event log in `seq` order) into a new store, which chains and signs every row"
)


class PredatesChains(ValueError):
    """The rows were written before hash chains: there is nothing to verify them against."""


@dataclass(frozen=True, slots=True)
class Finding:
    table: str  # "events", "ledger" or "chain_heads"
    where: str  # the chain and the position in it
    what: str

    def line(self) -> str:
        return f"{self.table} {self.where}: {self.what}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    partitions: int = 0
    entries: int = 0
    ledger_chains: int = 0
    heads: int = 0

    @property
    def clean(self) -> bool:
        return not self.findings

    def summary(self, key: str) -> str:
        return (
            f"audit: clean: {self.events} events in {self.partitions} partition(s), "
            f"{self.entries} ledger entries in {self.ledger_chains} chain(s), "
            f"{self.heads} signed heads (key {key}); the events replay to the stored ledger"
        )


@dataclass(frozen=True)
class AuditData:
    """What is verified: the whole event log (replay needs every event), the ledger and heads in
    scope, and the configuration the store recorded."""

    registry: Registry
    rulebooks: Mapping[str, Rulebook]
    calendar: WorkCalendar
    events: Iterable[LoggedEvent]  # in (partition, seq) order; may be a stream
    ledger: list[LedgerEntry]
    heads: list[ChainHead]
    unit: str | None = None
    year: int | None = None

    def in_scope(self, unit: str, year: int) -> bool:
        return (self.unit is None or unit == self.unit) and (self.year is None or year == self.year)


def verify(data: AuditData, verifier: Verifier) -> Report:
    report = Report()
    ledger = _by_chain(data.ledger)
    heads = [h for h in data.heads if h.chain == "events" or in_scope(h, data.in_scope)]
    report.heads = len(heads)
    event_heads = heads_of(heads, "events")
    forged = forged_head(heads, verifier)
    if forged is not None:
        report.findings.append(Finding("chain_heads", *forged))
    replayed: dict[str, list[LedgerEntry]] = {}
    refused = False  # an event the replay refuses: the first is reported
    events = _EventCheck(verifier, event_heads, report)
    try:
        for logged, outcome in replay_log(
            data.registry, data.rulebooks, data.calendar, events.checked(data.events)
        ):
            if outcome.status != "accepted" and not refused:
                refused = True
                report.findings.append(
                    Finding(
                        "events",
                        _event_where(logged, None),
                        f"the engine does not accept it on replay ({outcome.reason or 'duplicate'})",
                    )
                )
            for entry in outcome.entries:
                if data.in_scope(entry.unit, entry.year):
                    replayed.setdefault(ledger_key(entry.unit, entry.year), []).append(entry)
    except WhatIfError as exc:
        report.findings.append(Finding("events", "replay", str(exc)))
    events.finish()
    ledger_heads = heads_of(heads, "ledger")
    for key, entries in sorted(ledger.items()):
        report.ledger_chains += 1
        report.entries += len(entries)
        _check_ledger_chain(key, entries, ledger_heads.get(key, []), report)
    for key in sorted(set(replayed) | set(ledger)):
        _compare_replay(key, ledger.get(key, []), replayed.get(key, []), report)
    for key in sorted(set(ledger_heads) - set(ledger)):
        last = ledger_heads[key][-1]
        report.findings.append(
            Finding(
                "ledger",
                f"{key} seq {last.through_seq}",
                "missing: a signed head covers it, the store holds no entry of this chain",
            )
        )
    return report


def predates_chains(events: Iterable[LoggedEvent], ledger: Iterable[LedgerEntry]) -> int:
    """How many rows carry no hashes (written before chains)."""
    return sum(1 for e in events if not e.chain) + sum(1 for e in ledger if not e.chain)


# -- the event log -----------------------------------------------------------------------------


class _EventCheck:
    """Checks the events as the replay reads them, one partition's chain after another."""

    def __init__(
        self, verifier: Verifier, heads: dict[str, list[ChainHead]], report: Report
    ) -> None:
        self.signatures = IntakeSignatures(verifier)  # either form; each batch's root once
        self.heads = heads
        self.report = report
        self.broken: set[int] = set()  # partitions with a finding: the first one is reported
        self.unsigned: set[int] = set()
        self.partition: int | None = None
        self.position = 0
        self.previous = GENESIS
        self.last_seq = -1
        self.computed: dict[int, str] = {}  # seq -> chain value recomputed from the content
        self.seen_partitions: set[int] = set()

    def checked(self, events: Iterable[LoggedEvent]) -> Iterator[LoggedEvent]:
        for e in events:
            if e.partition != self.partition:
                self._close_partition()
                self.partition, self.position, self.previous = e.partition, 0, GENESIS
                self.last_seq, self.computed = -1, {}
                self.seen_partitions.add(e.partition)
            self.position += 1
            self.report.events += 1
            self._check(e)
            yield e

    def finish(self) -> None:
        self._close_partition()
        self.report.partitions = len(self.seen_partitions)
        for key in sorted(set(self.heads) - {str(p) for p in self.seen_partitions}):
            self._find(
                int(key),
                f"partition {key} seq {self.heads[key][-1].through_seq}",
                "missing: a signed head covers it, the log holds no event of this partition",
            )

    def _find(self, partition: int, where: str, what: str) -> None:
        if partition not in self.broken:
            self.broken.add(partition)
            self.report.findings.append(Finding("events", where, what))

    def _check(self, e: LoggedEvent) -> None:
        where = _event_where(e, self.position)
        values = e.__dict__
        digest = event_digest(values)
        if e.seq == self.last_seq:
            self._find(e.partition, where, f"a second event holds seq {e.seq}: one was inserted")
        elif digest != e.digest:
            self._find(e.partition, where, "its content does not match its digest: modified")
        elif link(self.previous, e.digest) != e.chain:
            self._find(
                e.partition,
                where,
                f"it does not follow the event before it (seq {self.last_seq}) in the chain: "
                "an event between them was deleted, or one was inserted or moved",
            )
        # recomputed from the content alone: what a signed head must equal
        self.previous = link(self.previous, digest)
        self.computed[e.seq] = self.previous
        self.last_seq = e.seq
        if not e.signature:
            if e.partition not in self.unsigned:
                self.unsigned.add(e.partition)
                self.report.findings.append(
                    Finding("events", where, "it carries no intake signature")
                )
        else:
            problem = self.signatures.problem(
                event_message(e.raw, e.posted_by, e.received_at), e.signature
            )
            if problem is not None:
                self._find(e.partition, where, problem)

    def _close_partition(self) -> None:
        if self.partition is None:
            return
        key = str(self.partition)
        check_heads(
            "events",
            f"partition {key}",
            self.computed,
            self.last_seq,
            self.heads.get(key, []),
            lambda where, what: self._find(self.partition or 0, where, what),
        )


def _event_where(e: LoggedEvent, position: int | None) -> str:
    at = f"position {position} " if position is not None else ""
    return f"partition {e.partition} {at}(seq {e.seq}, event {e.event_id})"


# -- the ledger --------------------------------------------------------------------------------


def _by_chain(entries: Iterable[LedgerEntry]) -> dict[str, list[LedgerEntry]]:
    out: dict[str, list[LedgerEntry]] = {}
    for e in entries:
        out.setdefault(ledger_key(e.unit, e.year), []).append(e)
    for chain in out.values():
        chain.sort(key=lambda e: (e.seq, e.entry_id))
    return out


def _check_ledger_chain(
    key: str, entries: list[LedgerEntry], heads: list[ChainHead], report: Report
) -> None:
    found: list[Finding] = []

    def find(where: str, what: str) -> None:
        if not found:
            found.append(Finding("ledger", where, what))

    previous, computed = GENESIS, {}
    for position, e in enumerate(entries, start=1):
        where = f"{key} position {position} (seq {e.seq}, entry {e.entry_id})"
        digest = entry_digest(e.__dict__)
        if e.seq < position:
            find(where, f"a second entry holds seq {e.seq}: one was inserted")
        elif e.seq > position:
            find(where, f"the entry at seq {position} is missing: deleted")
        elif digest != e.digest:
            moved = _written_at(e, len(entries))
            find(
                where,
                f"it was written at seq {moved}: entries reordered"
                if moved is not None
                else "its content does not match its digest: modified",
            )
        elif link(previous, e.digest) != e.chain:
            find(where, "it does not follow the entry before it in the chain")
        previous = link(previous, digest)
        computed[e.seq] = previous
    last = entries[-1].seq if entries else -1
    check_heads("ledger", key, computed, last, heads, find)
    report.findings.extend(found)


def _written_at(e: LedgerEntry, length: int) -> int | None:
    """The other `seq` an entry's digest was made with, when only its `seq` changed (a move)."""
    for seq in range(1, length + 1):
        if seq != e.seq and entry_digest({**e.__dict__, "seq": seq}) == e.digest:
            return seq
    return None


def _compare_replay(
    key: str, stored: list[LedgerEntry], replayed: list[LedgerEntry], report: Report
) -> None:
    """The first position where the stored chain and the replay's differ."""
    for position, (s, r) in enumerate(zip(stored, replayed, strict=False), start=1):
        where = f"{key} position {position} (seq {s.seq}, entry {s.entry_id})"
        if s.entry_id != r.entry_id:
            ids = {x.entry_id for x in replayed}
            what = (
                f"the events produce entry {r.entry_id} here"
                if s.entry_id in ids
                else "the events do not produce this entry: inserted"
            )
            if s.entry_id in ids and r.entry_id not in {x.entry_id for x in stored}:
                what += ", which the store lacks: deleted"
            elif s.entry_id in ids:
                what += ": entries reordered"
            report.findings.append(Finding("ledger", where, what))
            return
        differs = _differences(s, r)
        if differs:
            report.findings.append(
                Finding("ledger", where, "differs from what the events produce: " + differs)
            )
            return
    if len(stored) > len(replayed):
        extra = stored[len(replayed)]
        report.findings.append(
            Finding(
                "ledger",
                f"{key} position {len(replayed) + 1} (seq {extra.seq}, entry {extra.entry_id})",
                "the events do not produce this entry: inserted",
            )
        )
    elif len(replayed) > len(stored):
        gone = replayed[len(stored)]
        report.findings.append(
            Finding(
                "ledger",
                f"{key} position {len(stored) + 1} (seq {gone.seq}, entry {gone.entry_id})",
                "the events produce this entry, the store lacks it: deleted",
            )
        )


def _differences(stored: LedgerEntry, replayed: LedgerEntry) -> str:
    out = []
    for name in LedgerEntry.model_fields:
        a, b = getattr(stored, name), getattr(replayed, name)
        if a != b:
            out.append(f"{name} stored {_shown(a)}, replayed {_shown(b)}")
    return "; ".join(out)


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
