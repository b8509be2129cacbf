"""Reading a snapshot of the engine's state back (engine/snapshot.py), checking every field.

The snapshot comes from a store's rows: untrusted. Each value is checked for its type, its
range and what it refers to (units of the registry, rulebooks and rules the registry uses,
indices within their tables) before the engine sees it, so that a wrong value is a
`SnapshotError` naming it, never an engine that fails on a later event.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, cast

from engine.caps import Assessment, Claim
from engine.chain import fixed_fields
from engine.clock import SHANGHAI
from engine.compiled import CompiledRule
from engine.deadlines import Tracked
from engine.notices import REF_FIELD, Notice
from engine.outcome import Record
from schemas.ledger import DeadlineKind, DeadlineStatus

if TYPE_CHECKING:
    from engine.core import Engine

_STATUSES = frozenset({"open", "met", "late", "overdue", "withdrawn"})
_KINDS = frozenset({"vuln.notice", "supervision.warning"})


class SnapshotError(ValueError):
    """A snapshot that cannot be restored: malformed, or made under another configuration."""


def fill(engine: Engine, plain: dict[str, Any]) -> None:
    """Put the state of `plain` into `engine`, new and made under the same configuration."""
    _Reader(engine).fill(plain)


class _Reader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rules: dict[str, dict[str, CompiledRule]] = {
            book_id: {r.rule_id: r for rules in book.by_trigger.values() for r in rules}
            for book_id, book in engine._books.items()
        }
        self.rule_rows: list[tuple[str, CompiledRule]] = []
        self.forms: dict[tuple[int, str], str] = {}  # canonical-form prefix per assessment, rule
        self.amounts: dict[str, Decimal] = {}  # points by their text: a ledger has few amounts
        self.assessments: list[Assessment] = []
        self.claims: list[Claim] = []
        self.claim_owner: list[Assessment] = []
        self.tracked: list[Tracked] = []
        self.notices: list[Notice] = []

    def fill(self, plain: dict[str, Any]) -> None:
        e = self.engine
        e.watermark = opt_instant(plain.get("watermark"), "watermark")
        e._next_close = opt_instant(plain.get("next_close"), "next_close")
        closed = plain.get("closed_through")
        e.closed_through = None if closed is None else integer(closed, "closed_through", low=None)
        e._deadlines._arrivals = integer(plain.get("arrivals"), "arrivals")
        e._deadlines._versions = integer(plain.get("versions"), "versions")
        for i, r in enumerate(table(plain, "rules")):
            book_id, rule_id = fields(r, 2, f"rules[{i}]")
            found = self.rules.get(text(book_id, "rules"), {}).get(text(rule_id, "rules"))
            if found is None:
                raise SnapshotError(f"rules[{i}]: unknown rule {rule_id!r} of {book_id!r}")
            self.rule_rows.append((book_id, found))
        rows = table(plain, "assessments")
        self.assessments = [self._assessment(r, f"assessments[{i}]") for i, r in enumerate(rows)]
        for i, r in enumerate(table(plain, "claims")):
            self._claim(r, f"claims[{i}]")
        for i, r in enumerate(rows):  # each assessment's claims, now that they are read
            self._own_claims(self.assessments[i], r[7], f"assessments[{i}]")
        for i, r in enumerate(table(plain, "assessment_index")):
            where = f"assessment_index[{i}]"
            unit, year, listed = fields(r, 3, where)
            key = (self.unit(unit, where), integer(year, where))
            e._assessments[key] = None if listed is None else self.ref(self.assessments, listed)
        self.tracked = [
            self._tracked(r, f"tracked[{i}]") for i, r in enumerate(table(plain, "tracked"))
        ]
        if len({t.arrival for t in self.tracked}) != len(self.tracked):
            raise SnapshotError("tracked: two deadlines of the same arrival")
        owned: set[int] = set()
        for i, r in enumerate(table(plain, "notices")):
            self.notices.append(self._notice(r, f"notices[{i}]", owned))
        for i, r in enumerate(table(plain, "notices_by_year")):
            year, indices = fields(r, 2, f"notices_by_year[{i}]")
            by_key: dict[tuple[str, str, str], Notice] = {}
            for n in sequence(indices, f"notices_by_year[{i}]"):
                notice = self.ref(self.notices, n)
                if notice.key in by_key:
                    raise SnapshotError(f"notices_by_year[{i}]: notice {notice.key} twice")
                by_key[notice.key] = notice
            e._notices[integer(year, f"notices_by_year[{i}]")] = by_key
        for i, r in enumerate(table(plain, "records")):
            year, rows_ = fields(r, 2, f"records[{i}]")
            by_id: dict[str, Record] = {}
            for j, rec in enumerate(sequence(rows_, f"records[{i}]")):
                event_id, record = self._record(rec, f"records[{i}][{j}]")
                by_id[event_id] = record
            e._records[integer(year, f"records[{i}]")] = by_id
        self._queue(sequence(plain.get("queue"), "queue"))

    # -- the tables ---------------------------------------------------------------------------

    def _assessment(self, row: object, where: str) -> Assessment:
        unit, year, book_id, used, generations, seq, head, _ = fields(row, 8, where)
        unit, year, book_id = self.unit(unit, where), integer(year, where), text(book_id, where)
        book = self.engine._book(unit, year)
        if book is None or book.id != book_id:
            raise SnapshotError(f"{where}: {unit} {year} is not assessed under {book_id!r}")
        a = Assessment(unit, year, book_id, dict(book.cap_points))
        if not isinstance(used, dict):
            raise SnapshotError(f"{where}: caps used is not an object")
        for cap, amount in used.items():
            if cap not in a.cap_points:
                raise SnapshotError(f"{where}: unknown cap {cap!r}")
            a.used[cap] = points(amount, f"{where} cap {cap}")
            if a.used[cap] > a.cap_points[cap]:
                raise SnapshotError(f"{where}: cap {cap} used beyond its {a.cap_points[cap]}")
        for g in sequence(generations, where):
            ref, key, count = fields(g, 3, f"{where} generation")
            rule_id = self.rule(book_id, ref, where).rule_id
            a.generations[(rule_id, text(key, where))] = integer(count, where, low=1)
        a.seq, a.head = integer(seq, where), digest_text(head, where)
        return a

    def _claim(self, row: object, where: str) -> None:
        owner, ref, key, source, ids, at, reason, supporters, applied, entry, version, cid = fields(
            row, 12, where
        )
        a = self.ref(self.assessments, owner)
        rule = self.rule(a.rulebook, ref, where)
        form = self.forms.get((owner, rule.rule_id))
        if form is None:
            form = fixed_fields(a.unit, a.year, a.rulebook, rule.indicator, rule.item, rule.key)
            self.forms[(owner, rule.rule_id)] = form
        event_ids = tuple(text(i, where) for i in sequence(ids, where))
        amount = self.amounts.get(applied) if isinstance(applied, str) else None
        if amount is None:
            amount = self.amounts[applied] = points(applied, where)
        cid, version = text(cid, where), integer(version, where)
        claim = Claim(
            cid,
            rule,
            text(key, where),
            rule.rule.points,
            self.unit(source, where),
            event_ids,
            instant(at, where),
            text(reason, where),
            # null: supported by the events it cites (`Claim.supporters`)
            None
            if supporters is None
            else {text(s, where): None for s in sequence(supporters, where)},
            form,
            amount,
            entry_id_of(cid, version) if entry is None else text(entry, where),
            version,
        )
        if claim.applied > claim.requested:
            raise SnapshotError(f"{where}: applied {claim.applied} beyond {claim.requested}")
        self.claims.append(claim)
        self.claim_owner.append(a)

    def _own_claims(self, a: Assessment, indices: object, where: str) -> None:
        for n in sequence(indices, where):
            claim = self.ref(self.claims, n)
            if self.claim_owner[n] is not a:
                raise SnapshotError(f"{where}: claim {n} belongs to another assessment")
            key = (claim.rule.rule_id, claim.count_key)
            if key in a.by_key:
                raise SnapshotError(f"{where}: two claims of {key}")
            claim.order = a.appended  # the order the assessment's claims are listed in
            a.appended += 1
            a.claims.append(claim)
            a.by_key[key] = claim

    def _tracked(self, row: object, where: str) -> Tracked:
        unit, kind, ref, event_id, at, due, notice_due, arrival, supporters, year, *rest = fields(
            row, 14, where
        )
        routes, feedbacks, status, overdue = rest
        if kind not in _KINDS or status not in _STATUSES:
            raise SnapshotError(f"{where}: unknown kind or status {kind!r} {status!r}")
        t = Tracked(
            unit=self.unit(unit, where),
            kind=cast(DeadlineKind, kind),
            ref=text(ref, where),
            event_id=text(event_id, where),
            at=instant(at, where),
            due=instant(due, where),
            notice_due=opt_instant(notice_due, where),
            arrival=integer(arrival, where, low=1),
            supporters={text(s, where): None for s in sequence(supporters, where)},
            year=integer(year, where),
            overdue_routes=self.routes(routes, where),
            status=cast(DeadlineStatus, status),
        )
        for f in sequence(feedbacks, where):
            fid, fat = fields(f, 2, f"{where} feedback")
            t.feedbacks[text(fid, where)] = instant(fat, where)
        t.overdue_claims = self.pairs(overdue, where)
        return t

    def _notice(self, row: object, where: str, owned: set[int]) -> Notice:
        unit, kind, ref, year, postings, routes, keep_year, tracked = fields(row, 8, where)
        if kind not in REF_FIELD:
            raise SnapshotError(f"{where}: {kind!r} posts no notice")
        notice = Notice(
            key=(self.unit(unit, where), kind, text(ref, where)),
            year=integer(year, where),
            postings={text(p, where): None for p in sequence(postings, where)},
            count_routes=self.routes(routes, where),
            keep_year=integer(keep_year, where),
        )
        if tracked is not None:
            t = self.ref(self.tracked, tracked)
            if id(t) in owned or list(t.supporters) != list(notice.postings):
                raise SnapshotError(f"{where}: its deadline is another notice's")
            owned.add(id(t))
            t.supporters = notice.postings  # one dict, as the engine shares it
            notice.tracked = t
        return notice

    def _record(self, row: object, where: str) -> tuple[str, Record]:
        event_id, unit, kind, claims, notice, feedback_for, retracted = fields(row, 7, where)
        if not isinstance(retracted, bool):
            raise SnapshotError(f"{where}: retracted is not a boolean")
        record = Record(self.unit(unit, where), text(kind, where), retracted=retracted)
        if claims is not None:
            record.claims = tuple(self.pairs(claims, where))
        if notice is not None:
            record.notice = self.ref(self.notices, notice)
        if feedback_for is not None:
            record.feedback_for = self.ref(self.tracked, feedback_for)
        return text(event_id, where), record

    def _queue(self, indices: list[Any]) -> None:
        heap = [(t.due, t.arrival, t) for t in (self.ref(self.tracked, n) for n in indices)]
        for i in range(1, len(heap)):  # kept in its order: it must be a heap already
            if heap[i][:2] < heap[(i - 1) // 2][:2]:
                raise SnapshotError("queue: not in heap order")
        self.engine._deadlines.queue._heap = heap

    # -- references ---------------------------------------------------------------------------

    def ref(self, items: list[Any], n: object) -> Any:
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < len(items):
            raise SnapshotError(f"a reference out of its table: {n!r}")
        return items[n]

    def unit(self, value: object, where: str) -> str:
        if not isinstance(value, str) or value not in self.engine._chain:
            raise SnapshotError(f"{where}: unknown unit {value!r}")
        return value

    def rule(self, book_id: str, ref: object, where: str) -> CompiledRule:
        """The rule of row `ref` of the rules table, which must be of rulebook `book_id`."""
        book, rule = self.ref(self.rule_rows, ref)
        if book != book_id:
            raise SnapshotError(f"{where}: rule {rule.rule_id!r} is not of {book_id!r}")
        return cast(CompiledRule, rule)

    def routes(self, value: object, where: str) -> tuple[tuple[Assessment, CompiledRule], ...]:
        out = []
        for pair in sequence(value, where):
            a_index, ref = fields(pair, 2, f"{where} route")
            a = self.ref(self.assessments, a_index)
            out.append((a, self.rule(a.rulebook, ref, where)))
        return tuple(out)

    def pairs(self, value: object, where: str) -> list[tuple[Assessment, Claim]]:
        out = []
        for n in sequence(value, where):
            claim = self.ref(self.claims, n)
            out.append((self.claim_owner[n], claim))
        return out


def entry_id_of(claim_id: str, version: int) -> str:
    """The id of a claim's current entry after `version` writes (engine/caps.py `_write`)."""
    return claim_id if version <= 1 else f"{claim_id}.{version - 1}"


# -- values -----------------------------------------------------------------------------------


def table(plain: dict[str, Any], name: str) -> list[Any]:
    return sequence(plain.get(name), name)


def sequence(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise SnapshotError(f"{where}: not a list")
    return value


def fields(value: object, count: int, where: str) -> list[Any]:
    if not isinstance(value, list) or len(value) != count:
        raise SnapshotError(f"{where}: not a row of {count} fields")
    return value


def text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise SnapshotError(f"{where}: not a string: {value!r:.40}")
    return value


def digest_text(value: object, where: str) -> str:
    value = text(value, where)
    if value and (len(value) != 64 or value.strip("0123456789abcdef")):
        raise SnapshotError(f"{where}: not a chain value: {value!r:.40}")
    return value


def integer(value: object, where: str, low: int | None = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or (low is not None and value < low):
        raise SnapshotError(f"{where}: not an integer of at least {low}: {value!r:.40}")
    return value


def instant(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise SnapshotError(f"{where}: not an instant: {value!r:.40}")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise SnapshotError(f"{where}: not an ISO 8601 instant: {value!r:.40}") from None
    if at.tzinfo is None:
        raise SnapshotError(f"{where}: an instant without its offset: {value!r:.40}")
    return at.astimezone(SHANGHAI)


def opt_instant(value: object, where: str) -> datetime | None:
    return None if value is None else instant(value, where)


def points(value: object, where: str) -> Decimal:
    if not isinstance(value, str):
        raise SnapshotError(f"{where}: points are not decimal text: {value!r:.40}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise SnapshotError(f"{where}: not a decimal: {value!r:.40}") from None
    if not amount.is_finite() or amount < 0:
        raise SnapshotError(f"{where}: not a non-negative amount: {value!r:.40}")
    return amount
