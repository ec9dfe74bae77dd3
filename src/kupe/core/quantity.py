"""Exact parsing and formatting of Kubernetes-style quantities for cpu, memory and storage.

Parsing only validates and converts; callers keep and echo the string the client wrote.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Final

MILLICORES_PER_CORE: Final = 1000
MAX_CPU_CORES: Final = 1_000_000
MAX_CPU_MILLICORES: Final = MAX_CPU_CORES * MILLICORES_PER_CORE
MAX_BYTES: Final = 2**60
MAX_QUANTITY_LENGTH: Final = 64

BINARY_UNITS: Final[dict[str, int]] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
DECIMAL_UNITS: Final[dict[str, int]] = {
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
BYTE_UNITS: Final[dict[str, int]] = {**BINARY_UNITS, **DECIMAL_UNITS}

# ASCII digits only (`\d` would also match other scripts' digits); "1." is rejected, ".5" is not.
_NUMBER = r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
_CPU_RE: Final = re.compile(rf"\A(?P<num>{_NUMBER})(?P<milli>m?)\Z")
_BYTES_RE: Final = re.compile(rf"\A(?P<num>{_NUMBER})(?P<unit>[KMGTPE]i|[kMGTPE])\Z")
_BARE_NUMBER_RE: Final = re.compile(rf"\A{_NUMBER}\Z")

_CPU_EXPECTED: Final = (
    'must be a positive number of cores (e.g. "4", "1.5") or millicores (e.g. "500m")'
)
_BYTES_EXPECTED: Final = (
    "must be a positive number with a unit (Ki, Mi, Gi, Ti, Pi, Ei or k, M, G, T, P, E), e.g. 16Gi"
)


class QuantityError(ValueError):
    """A quantity string is malformed or out of range; the message suits an API error body."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _check_text(text: object, field: str, example: str) -> str:
    """Return `text` if it is a string of sane length, else raise QuantityError."""
    if not isinstance(text, str):
        raise QuantityError(f"{field} must be a string such as {example}", field=field)
    if len(text) > MAX_QUANTITY_LENGTH:
        raise QuantityError(
            f"{field} is too long (at most {MAX_QUANTITY_LENGTH} characters)", field=field
        )
    return text


def parse_cpu(text: str) -> int:
    """Parse a cpu quantity ("4", "1.5", "500m") into millicores."""
    field = "cpu"
    text = _check_text(text, field, '"4", "1.5" or "500m"')
    match = _CPU_RE.match(text)
    if match is None:
        if text.startswith("-") and _CPU_RE.match(text[1:]):
            raise QuantityError(f"{field} must be greater than zero", field=field)
        raise QuantityError(f"{field} {_CPU_EXPECTED}", field=field)
    per_unit = 1 if match["milli"] else MILLICORES_PER_CORE
    millicores = Fraction(match["num"]) * per_unit
    if millicores == 0:
        raise QuantityError(f"{field} must be greater than zero", field=field)
    if millicores > MAX_CPU_MILLICORES:
        raise QuantityError(
            f"{field} is too large; at most {MAX_CPU_CORES} cores are allowed", field=field
        )
    if millicores.denominator != 1:
        raise QuantityError(
            f'{field} must be a whole number of millicores (at least 1m, i.e. "0.001")',
            field=field,
        )
    return millicores.numerator


def parse_bytes_quantity(text: str, field: str) -> int:
    """Parse a byte quantity with a mandatory unit ("16Gi", "1.5Gi", "1G") into bytes.

    Fractional bytes round up, as in Kubernetes; `field` names the quantity in error messages.
    """
    text = _check_text(text, field, '"16Gi"')
    match = _BYTES_RE.match(text)
    if match is None:
        if _BARE_NUMBER_RE.match(text):
            if Fraction(text) == 0:
                raise QuantityError(f"{field} must be greater than zero", field=field)
            raise QuantityError(f"{field} must carry a unit, e.g. 16Gi", field=field)
        unsigned = text[1:]
        if text.startswith("-") and (_BYTES_RE.match(unsigned) or _BARE_NUMBER_RE.match(unsigned)):
            raise QuantityError(f"{field} must be greater than zero", field=field)
        raise QuantityError(f"{field} {_BYTES_EXPECTED}", field=field)
    value = Fraction(match["num"]) * BYTE_UNITS[match["unit"]]
    if value == 0:
        raise QuantityError(f"{field} must be greater than zero", field=field)
    if value > MAX_BYTES:
        raise QuantityError(f"{field} is too large; at most 1Ei is allowed", field=field)
    return math.ceil(value)


def parse_memory(text: str) -> int:
    """Parse a memory quantity such as "16Gi" into bytes."""
    return parse_bytes_quantity(text, "memory")


def parse_storage(text: str) -> int:
    """Parse a storage quantity such as "100Gi" into bytes."""
    return parse_bytes_quantity(text, "storage")


def _check_count(value: int, what: str) -> None:
    """Reject non-integers (including bool) and negative numbers passed to a formatter."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} must not be negative")


def format_cpu(millicores: int) -> str:
    """Format millicores as whole cores when exact ("4"), else as millicores ("1500m")."""
    _check_count(millicores, "millicores")
    if millicores % MILLICORES_PER_CORE == 0:
        return str(millicores // MILLICORES_PER_CORE)
    return f"{millicores}m"


def _largest_exact(n: int, units: dict[str, int]) -> tuple[int, str] | None:
    """(coefficient, unit) for the largest unit in `units` that divides n exactly, if any."""
    for unit, size in reversed(units.items()):
        if n % size == 0:
            return n // size, unit
    return None


def format_bytes(n: int) -> str:
    """Format bytes with the largest exactly-dividing binary unit ("16Gi"), or decimal unit if
    that gives a smaller number ("1T", not "976562500Ki"); plain digits when no unit divides.
    Zero is "0Gi": memory and storage always carry a unit.
    """
    _check_count(n, "byte count")
    if n == 0:
        return "0Gi"
    binary = _largest_exact(n, BINARY_UNITS)
    decimal = _largest_exact(n, DECIMAL_UNITS)
    if binary is not None and (decimal is None or binary[0] <= decimal[0]):
        return f"{binary[0]}{binary[1]}"
    if decimal is not None:
        return f"{decimal[0]}{decimal[1]}"
    return str(n)
