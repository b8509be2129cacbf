"""`schemas.ledger.trusted`: models built without validation, as validation would build them; the
models of a frozen class share their set of field names, which nothing changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.envelope import Envelope
from schemas.ledger import EntrySeen, trusted, whole

AT = datetime(2018, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def _seen(entry_id: str) -> EntrySeen:
    values = {"entry_id": entry_id, "unit": "fz", "year": 2018, "seen_at": AT, "after": False}
    return trusted(EntrySeen, values)


def test_as_validated() -> None:
    built = _seen("x1")
    validated = EntrySeen.model_validate(built.__dict__)
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set
    assert built.model_dump() == validated.model_dump()
    assert built.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)


def test_a_copy_with_changes_leaves_the_others_as_they_were() -> None:
    one, two = _seen("x1"), _seen("x2")
    changed = one.model_copy(update={"entry_id": "x3"})
    assert changed.entry_id == "x3" and one.entry_id == "x1"
    assert one.model_fields_set == two.model_fields_set == set(EntrySeen.model_fields)
    assert trusted(Envelope, {"posted_by": "p", "received_at": AT, "signature": ""}) == Envelope(
        posted_by="p", received_at=AT
    )


def test_an_assignment_is_refused_and_changes_no_set() -> None:
    one, two = _seen("x1"), _seen("x2")
    with pytest.raises(ValidationError):
        one.entry_id = "x9"  # type: ignore[misc]
    assert one.entry_id == "x1"
    assert two.model_fields_set == set(EntrySeen.model_fields)


class _Mutable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    a: int
    b: int


def test_models_of_a_class_that_is_not_frozen_have_sets_of_their_own() -> None:
    one, two = trusted(_Mutable, {"a": 1, "b": 2}), trusted(_Mutable, {"a": 3, "b": 4})
    assert one.model_fields_set is not two.model_fields_set
    one.a = 5
    assert (one.a, two.a) == (5, 3)
    assert two.model_fields_set == {"a", "b"}


def test_the_slots_are_set_as_validation_sets_them() -> None:
    # `trusted` and `whole` set BaseModel's slots through their descriptors (issue 12): each
    # slot must hold what validation puts there, and the model must copy and compare alike
    values = {"entry_id": "x1", "unit": "fz", "year": 2018, "seen_at": AT, "after": False}
    validated = EntrySeen.model_validate(values)
    for built in (trusted(EntrySeen, dict(values)), whole(EntrySeen)(dict(values))):
        for slot in ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"):
            assert getattr(built, slot) == getattr(validated, slot), slot
        assert built.__dict__ == validated.__dict__
        assert built == validated and built.model_copy() == validated
        assert built.model_dump_json() == validated.model_dump_json()
