"""The signed chain heads in `tracker audit verify` (tracker/audit.py; docs/audit.md): each head's
signature under the trusted public key, and each head against the chain recomputed from the rows'
content, so that rows rewritten with recomputed hashes are caught without the key."""

from __future__ import annotations

from collections.abc import Callable

from config.signing import Verifier
from engine.chain import head_message
from schemas.ledger import ChainHead


def in_scope(head: ChainHead, scope: Callable[[str, int], bool]) -> bool:
    """Whether a ledger head's (unit, year) is in the verified scope."""
    unit, _, year = head.key.rpartition("/")
    return year.isdigit() and scope(unit, int(year))


def heads_of(heads: list[ChainHead], chain: str) -> dict[str, list[ChainHead]]:
    out: dict[str, list[ChainHead]] = {}
    for h in sorted(heads, key=lambda h: (h.key, h.through_seq)):
        if h.chain == chain:
            out.setdefault(h.key, []).append(h)
    return out


def forged_head(heads: list[ChainHead], verifier: Verifier) -> tuple[str, str] | None:
    """Where and why, for the first head whose signature does not verify."""
    for h in heads:
        message = head_message(h.chain, h.key, h.through_seq, h.head)
        if not verifier.valid(message, h.signature):
            return (
                f"{h.chain} {h.key} through seq {h.through_seq}",
                "its signature does not match: the head was forged or altered, or signed with "
                "another key",
            )
    return None


def check_heads(
    chain: str,
    name: str,
    computed: dict[int, str],
    last_seq: int,
    heads: list[ChainHead],
    find: Callable[[str, str], None],
) -> None:
    """Each signed head against the chain recomputed from the rows' content."""
    covered = -1
    for h in heads:
        covered = max(covered, h.through_seq)
        value = computed.get(h.through_seq)
        where = f"{name} seq {h.through_seq}"
        if value is None:
            find(where, "missing: a signed head covers this row, the store does not hold it")
            return
        if value != h.head:
            find(
                where,
                "the rows up to here are not the ones that were signed: rewritten (hashes "
                "recomputed without the key)",
            )
            return
    if last_seq > covered:
        after = min(s for s in computed if s > covered)
        find(
            f"{name} seq {after}",
            "no signed head covers this row or any after it: appended without the key",
        )
