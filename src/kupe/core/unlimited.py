"""How "unlimited" is written on the wire: present and explicit, never left out (clients read a
missing number as 0)."""

from __future__ import annotations

UNLIMITED_COUNT = -1
UNLIMITED_QUANTITY = "unlimited"


def count_is_unlimited(value: int | None) -> bool:
    return value is None or value < 0


def quantity_is_unlimited(value: str | None) -> bool:
    return value is None or value == UNLIMITED_QUANTITY
