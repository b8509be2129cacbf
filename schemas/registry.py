"""The unit registry (spec section 3): which units exist and which rulebook assesses them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

Tier = Literal["provincial-dept", "city-gov", "county-gov", "city-dept"]
TIERS: tuple[Tier, ...] = ("provincial-dept", "city-gov", "county-gov", "city-dept")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Assessment(_Frozen):
    year: int = Field(ge=2000, le=2100)
    tier: Tier
    rulebook: str


class Unit(_Frozen):
    id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1)
    tier: Tier
    parent: str | None = None


class Registry(_Frozen):
    assessments: tuple[Assessment, ...] = ()
    units: tuple[Unit, ...]
    _by_id: dict[str, Unit] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: object, /) -> None:
        self._by_id = {u.id: u for u in self.units}

    @model_validator(mode="after")
    def _consistent(self) -> Registry:
        ids = [u.id for u in self.units]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate unit ids: {', '.join(dupes)}")
        known = set(ids)
        for unit in self.units:
            if unit.parent is not None and unit.parent not in known:
                raise ValueError(f"unit {unit.id}: unknown parent {unit.parent}")
        seen: set[tuple[int, str]] = set()
        for a in self.assessments:
            if (a.year, a.tier) in seen:
                raise ValueError(f"two rulebooks assess tier {a.tier} in {a.year}")
            seen.add((a.year, a.tier))
        by_id = {u.id: u for u in self.units}
        for unit in self.units:
            hops, cur = 0, unit.parent
            while cur is not None:
                hops += 1
                if cur == unit.id or hops > len(self.units):
                    raise ValueError(f"unit {unit.id}: parent chain has a cycle")
                cur = by_id[cur].parent
        return self

    def unit(self, unit_id: str) -> Unit | None:
        return self._index().get(unit_id)

    def ancestors(self, unit_id: str) -> tuple[str, ...]:
        """Parent, grandparent, ... of a unit (nearest first)."""
        index = self._index()
        out: list[str] = []
        cur = index[unit_id].parent
        while cur is not None:
            out.append(cur)
            cur = index[cur].parent
        return tuple(out)

    def root(self, unit_id: str) -> str:
        chain = self.ancestors(unit_id)
        return chain[-1] if chain else unit_id

    def rulebook_for(self, tier: str, year: int) -> str | None:
        for a in self.assessments:
            if a.year == year and a.tier == tier:
                return a.rulebook
        return None

    def _index(self) -> dict[str, Unit]:
        # Not `self._by_id`: pydantic finds a private attribute only after the ordinary look-up
        # has failed (an AttributeError raised and caught), ~5 us against ~0.1 us here; the
        # intake looks units up several times per event (the contract check, authorization,
        # the partition).
        private = self.__pydantic_private__
        assert private is not None
        by_id: dict[str, Unit] = private["_by_id"]
        return by_id
