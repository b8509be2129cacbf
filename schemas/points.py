"""Points are decimals, never floats: ten deductions of 0.2 must be exactly 2.0."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

PLACES = 4  # the store keeps Decimal(18, 4); a finer amount would be silently rounded there


def to_points(value: Any) -> Decimal:
    """Accept a decimal string, an int or a Decimal; refuse floats (they are not exact)."""
    if isinstance(value, (bool, float)):
        raise ValueError(f"points must be written as a decimal string, not {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | str):
        try:
            number = Decimal(value)
        except Exception as exc:  # decimal.InvalidOperation is not a ValueError
            raise ValueError(f"not a decimal number: {value!r}") from exc
    else:
        raise ValueError(f"not a decimal number: {value!r}")
    if not number.is_finite() or number.as_tuple().exponent < -PLACES:  # type: ignore[operator]
        raise ValueError(f"points need at most {PLACES} decimal places: {value!r}")
    return number


def format_points(value: Decimal) -> str:
    """Canonical text of a point amount: '2.5', '0', '-1' (no exponent, no trailing zeros)."""
    if value == 0:
        return "0"
    text = f"{value.normalize():f}"
    return text


Points = Annotated[
    Decimal,
    BeforeValidator(to_points),
    PlainSerializer(format_points, return_type=str, when_used="json"),
]
