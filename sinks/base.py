"""The store port: what the tracker writes and reads, whatever the backend."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from schemas.ledger import DeadLetter, DeadlineState, LedgerEntry, LoggedEvent
from schemas.registry import Registry
from schemas.rulebook import Rulebook


@dataclass
class Batch:
    events: list[LoggedEvent] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)
    deadlines: list[DeadlineState] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events) + len(self.entries) + len(self.deadlines) + len(self.dead_letters)


class StoreError(RuntimeError):
    """The store cannot be reached or used; the message is one line for the user."""


class Sink(Protocol):
    """Every write is idempotent: writing the same batch twice changes nothing."""

    def save_config(self, registry: Registry, rulebooks: Mapping[str, Rulebook]) -> None: ...

    def load_config(self) -> tuple[Registry, dict[str, Rulebook]] | None: ...

    def write(self, batch: Batch) -> None: ...

    def logged_events(self) -> Iterator[LoggedEvent]: ...

    def next_seq(self, partition: int = 0) -> int: ...

    def ledger(self, unit: str | None = None, year: int | None = None) -> list[LedgerEntry]: ...

    def deadlines(
        self, unit: str | None = None, year: int | None = None
    ) -> list[DeadlineState]: ...

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]: ...

    def known_letters(self, letter_ids: Sequence[str]) -> set[str]: ...

    def totals(self) -> dict[tuple[str, int, str], Decimal]: ...

    def event_unit_years(self) -> set[tuple[str, int]]: ...

    def watermark(self) -> datetime | None: ...

    def close(self) -> None: ...
