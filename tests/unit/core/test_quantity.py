"""Tests for kupe.core.quantity: exact parsing and formatting of cpu, memory and storage."""

from __future__ import annotations

import decimal
import math
import pickle
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kupe.core.quantity import (
    BYTE_UNITS,
    MAX_BYTES,
    MAX_CPU_MILLICORES,
    QuantityError,
    format_bytes,
    format_cpu,
    parse_bytes_quantity,
    parse_cpu,
    parse_memory,
    parse_storage,
)

KI, MI, GI, TI, PI, EI = (2**s for s in (10, 20, 30, 40, 50, 60))

CPU_GENERAL = 'cpu must be a positive number of cores (e.g. "4", "1.5") or millicores (e.g. "500m")'
CPU_NOT_POSITIVE = "cpu must be greater than zero"
CPU_TOO_FINE = "cpu must be a whole number of millicores"
CPU_TOO_LARGE = "cpu is too large"
MEMORY_GENERAL = "memory must be a positive number with a unit (Ki, Mi, Gi, Ti, Pi, Ei or k, M,"
MEMORY_NO_UNIT = "memory must carry a unit, e.g. 16Gi"
MEMORY_NOT_POSITIVE = "memory must be greater than zero"
MEMORY_TOO_LARGE = "memory is too large; at most 1Ei is allowed"

NOT_STRINGS: list[Any] = [4, 1.5, True, None, b"4Gi", Decimal("4"), ["4"], {"cpu": "4"}]
Parser = Callable[[str], int]
PARSERS: list[Parser] = [parse_cpu, parse_memory, parse_storage]


# --- cpu -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "millicores"),
    [
        ("4", 4000),
        ("1", 1000),
        ("1.5", 1500),
        ("0.25", 250),
        ("0.001", 1),
        (".5", 500),
        ("1.500", 1500),
        ("04", 4000),
        ("500m", 500),
        ("1m", 1),
        ("1.0m", 1),
        ("1500m", 1500),
        ("0.5000", 500),
        ("1000000", MAX_CPU_MILLICORES),
        ("1000000000m", MAX_CPU_MILLICORES),
        ("999999.999", MAX_CPU_MILLICORES - 1),
    ],
)
def test_parse_cpu_accepts(text: str, millicores: int) -> None:
    assert parse_cpu(text) == millicores


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", CPU_GENERAL),
        (" 4", CPU_GENERAL),
        ("4 ", CPU_GENERAL),
        ("4\n", CPU_GENERAL),
        ("\n4", CPU_GENERAL),
        ("1e3", CPU_GENERAL),
        ("abc", CPU_GENERAL),
        ("4cores", CPU_GENERAL),
        ("+4", CPU_GENERAL),
        ("1.", CPU_GENERAL),
        (".", CPU_GENERAL),
        ("m", CPU_GENERAL),
        (".m", CPU_GENERAL),
        ("4M", CPU_GENERAL),
        ("4Gi", CPU_GENERAL),
        ("4mm", CPU_GENERAL),
        ("1,5", CPU_GENERAL),
        ("1_000", CPU_GENERAL),
        ("--1", CPU_GENERAL),
        ("\u0664", CPU_GENERAL),  # ARABIC-INDIC DIGIT FOUR: only ASCII digits count
        ("\uff14", CPU_GENERAL),  # FULLWIDTH DIGIT FOUR
        ("NaN", CPU_GENERAL),
        ("inf", CPU_GENERAL),
        ("-1", CPU_NOT_POSITIVE),
        ("-500m", CPU_NOT_POSITIVE),
        ("-0", CPU_NOT_POSITIVE),
        ("0", CPU_NOT_POSITIVE),
        ("0m", CPU_NOT_POSITIVE),
        ("0.0", CPU_NOT_POSITIVE),
        ("000", CPU_NOT_POSITIVE),
        ("1.5m", CPU_TOO_FINE),
        ("0.5m", CPU_TOO_FINE),
        ("0.0001", CPU_TOO_FINE),
        ("1.0005", CPU_TOO_FINE),
        ("1000001", CPU_TOO_LARGE),
        ("1000000.001", CPU_TOO_LARGE),
        ("1000000001m", CPU_TOO_LARGE),
        ("1" * 40, CPU_TOO_LARGE),
        ("1" * 65, "cpu is too long"),
    ],
)
def test_parse_cpu_rejects(text: str, message: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_cpu(text)
    assert str(info.value).startswith(message)
    assert info.value.field == "cpu"


def test_cpu_too_large_message_names_the_limit() -> None:
    with pytest.raises(QuantityError, match=r"\Acpu is too large; at most 1000000 cores"):
        parse_cpu("2000000")


def test_cpu_too_fine_message_says_what_is_expected() -> None:
    with pytest.raises(QuantityError, match=r"at least 1m"):
        parse_cpu("1.5m")


# --- memory and storage ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("16Gi", 16 * GI),
        ("1.5Gi", 1536 * MI),
        ("512Mi", 512 * MI),
        ("1Ki", KI),
        (".5Ki", 512),
        ("2Ti", 2 * TI),
        ("3Pi", 3 * PI),
        ("1Ei", EI),
        ("1024Pi", EI),
        ("1G", 10**9),
        ("100k", 100_000),
        ("1.5k", 1500),
        ("0.1k", 100),
        ("4M", 4_000_000),
        ("2T", 2 * 10**12),
        ("5P", 5 * 10**15),
        ("1E", 10**18),
        ("016Gi", 16 * GI),
        # Fractional bytes round up, as in Kubernetes.
        ("0.0001k", 1),
        ("1.0001Ki", 1025),
        ("0.3Ki", 308),
        ("0" * 60 + "1Gi", GI),
    ],
)
def test_parse_memory_accepts(text: str, n: int) -> None:
    assert parse_memory(text) == n
    assert parse_storage(text) == n
    assert parse_bytes_quantity(text, "anything") == n


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", MEMORY_GENERAL),
        ("16gi", MEMORY_GENERAL),
        ("16GB", MEMORY_GENERAL),
        ("16 Gi", MEMORY_GENERAL),
        (" 16Gi", MEMORY_GENERAL),
        ("16Gi ", MEMORY_GENERAL),
        ("16Gi\n", MEMORY_GENERAL),
        ("Gi", MEMORY_GENERAL),
        (".Gi", MEMORY_GENERAL),
        ("1.Gi", MEMORY_GENERAL),
        ("1e9", MEMORY_GENERAL),
        ("1e3k", MEMORY_GENERAL),
        ("16K", MEMORY_GENERAL),
        ("16m", MEMORY_GENERAL),
        ("16mi", MEMORY_GENERAL),
        ("16Gib", MEMORY_GENERAL),
        ("16B", MEMORY_GENERAL),
        ("+16Gi", MEMORY_GENERAL),
        ("16GiGi", MEMORY_GENERAL),
        ("\uff11\uff16Gi", MEMORY_GENERAL),  # fullwidth digits
        ("16", MEMORY_NO_UNIT),
        ("1.5", MEMORY_NO_UNIT),
        ("17179869184", MEMORY_NO_UNIT),
        ("0", MEMORY_NOT_POSITIVE),
        ("0.0", MEMORY_NOT_POSITIVE),
        ("0Gi", MEMORY_NOT_POSITIVE),
        ("0.0Mi", MEMORY_NOT_POSITIVE),
        ("-1Gi", MEMORY_NOT_POSITIVE),
        ("-0Gi", MEMORY_NOT_POSITIVE),
        ("-16", MEMORY_NOT_POSITIVE),
        ("2Ei", MEMORY_TOO_LARGE),
        ("1025Pi", MEMORY_TOO_LARGE),
        ("1.0000000001Ei", MEMORY_TOO_LARGE),
        ("2E", MEMORY_TOO_LARGE),
        ("9" * 40 + "Gi", MEMORY_TOO_LARGE),
        ("1" * 65 + "Gi", "memory is too long"),
    ],
)
def test_parse_memory_rejects(text: str, message: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_memory(text)
    assert str(info.value).startswith(message)
    assert info.value.field == "memory"


@pytest.mark.parametrize("text", ["16", "0Gi", "16gi", "2Ei", ""])
def test_parse_storage_names_storage(text: str) -> None:
    with pytest.raises(QuantityError, match=r"\Astorage ") as info:
        parse_storage(text)
    assert "memory" not in str(info.value)
    assert info.value.field == "storage"


def test_parse_bytes_quantity_uses_the_given_field_name() -> None:
    with pytest.raises(QuantityError, match=r"\AephemeralStorage must carry a unit, e\.g\. 16Gi\Z"):
        parse_bytes_quantity("16", "ephemeralStorage")


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("value", NOT_STRINGS)
def test_parsers_reject_non_strings(parse: Parser, value: Any) -> None:
    with pytest.raises(QuantityError, match=r"must be a string"):
        parse(value)


def test_quantity_error_is_a_value_error_and_pickles() -> None:
    with pytest.raises(ValueError, match="memory") as info:
        parse_memory("16")
    err = info.value
    assert isinstance(err, QuantityError)
    assert err.message == str(err)
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy, QuantityError)
    assert (str(copy), copy.field) == (str(err), "memory")


# --- formatting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("millicores", "text"),
    [
        (0, "0"),
        (1, "1m"),
        (500, "500m"),
        (1000, "1"),
        (1500, "1500m"),
        (4000, "4"),
        (MAX_CPU_MILLICORES, "1000000"),
    ],
)
def test_format_cpu(millicores: int, text: str) -> None:
    assert format_cpu(millicores) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0Gi"),
        (1, "1"),
        (1023, "1023"),
        (1536, "1536"),
        (KI, "1Ki"),
        (3 * 512, "1536"),
        (16 * GI, "16Gi"),
        (17179869184, "16Gi"),
        (1536 * MI, "1536Mi"),
        (1024 * GI, "1Ti"),
        (EI, "1Ei"),
        (2048 * EI, "2048Ei"),
        (1000, "1k"),
        (1500, "1500"),
        (10**9, "1G"),
        (10**18, "1E"),
        (2000 * 10**18, "2000E"),
        (1_500_000, "1500k"),
        (10**12, "1T"),
        (10**15, "1P"),
        (3 * 10**6, "3M"),
        # Binary wins ties and whenever it gives the smaller number.
        (1000 * KI, "1000Ki"),
        (1500 * KI, "1500Ki"),
        (1000 * MI, "1000Mi"),
        (10**6 * MI, "1000000Mi"),
        # A decimal unit wins when it gives the smaller number.
        (10**6 * KI, "1024M"),
    ],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize("formatter", [format_cpu, format_bytes])
def test_formatters_reject_negative_and_non_int(formatter: Callable[[int], str]) -> None:
    with pytest.raises(ValueError, match="negative"):
        formatter(-1)
    bad: Any
    for bad in (True, 1.0, "1", None):
        with pytest.raises(TypeError):
            formatter(bad)


# --- properties ------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=MAX_CPU_MILLICORES))
@example(1)
@example(1000)
@example(MAX_CPU_MILLICORES)
def test_cpu_round_trips(millicores: int) -> None:
    assert parse_cpu(format_cpu(millicores)) == millicores


BINARY_MULTIPLES = st.integers(min_value=1, max_value=MAX_BYTES // KI).map(lambda k: k * KI)
DECIMAL_MULTIPLES = st.integers(min_value=1, max_value=MAX_BYTES // 1000).map(lambda k: k * 1000)


@given(st.one_of(BINARY_MULTIPLES, DECIMAL_MULTIPLES))
@example(KI)
@example(1000)
@example(MAX_BYTES)
@example(10**18)
def test_bytes_round_trip_through_memory_and_storage(n: int) -> None:
    text = format_bytes(n)
    assert parse_memory(text) == n
    assert parse_storage(text) == n


@given(st.integers(min_value=1, max_value=MAX_BYTES))
def test_bytes_round_trip_or_are_refused_for_lack_of_a_unit(n: int) -> None:
    text = format_bytes(n)
    if text.isdigit():
        assert n % 1000 != 0
        assert n % KI != 0
        with pytest.raises(QuantityError, match="must carry a unit"):
            parse_memory(text)
    else:
        assert parse_memory(text) == n


@given(st.integers(min_value=0, max_value=2**80))
def test_format_bytes_is_exact(n: int) -> None:
    text = format_bytes(n)
    digits = text.rstrip("".join(BYTE_UNITS) + "i")
    unit = text[len(digits) :]
    assert int(digits) * BYTE_UNITS.get(unit, 1) == n


QUANTITY_ALPHABET = "0123456789.-+ mkKMGTPEib\n"
ANY_TEXT = st.one_of(st.text(), st.text(alphabet=QUANTITY_ALPHABET, max_size=80))


@given(ANY_TEXT)
def test_parse_cpu_only_raises_quantity_error(text: str) -> None:
    try:
        millicores = parse_cpu(text)
    except QuantityError as err:
        message = str(err)
    else:
        assert 1 <= millicores <= MAX_CPU_MILLICORES
        return
    assert message.startswith("cpu ")


@pytest.mark.parametrize(("parse", "field"), [(parse_memory, "memory"), (parse_storage, "storage")])
@given(text=ANY_TEXT)
def test_parse_bytes_only_raises_quantity_error(parse: Parser, field: str, text: str) -> None:
    try:
        n = parse(text)
    except QuantityError as err:
        message = str(err)
    else:
        assert 1 <= n <= MAX_BYTES
        return
    assert message.startswith(f"{field} ")


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.binary()))
def test_parsers_only_raise_quantity_error_for_non_strings(value: Any) -> None:
    for parse in PARSERS:
        with pytest.raises(QuantityError):
            parse(value)


# Well-formed numbers: checked against an independent Decimal computation.
NUMBER = r"(?:[0-9]{1,8}(?:\.[0-9]{1,8})?|\.[0-9]{1,8})"


def _exact(number: str, factor: int) -> Decimal:
    """number * factor as an exact Decimal; the wide context traps any rounding."""
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        ctx.traps[decimal.Inexact] = True
        return Decimal(number) * factor


@given(st.from_regex(rf"\A{NUMBER}m?\Z"))
def test_well_formed_cpu_matches_decimal_model(text: str) -> None:
    number, milli = (text[:-1], 1) if text.endswith("m") else (text, 1000)
    expected = _exact(number, milli)
    if expected == 0:
        message = "greater than zero"
    elif expected > MAX_CPU_MILLICORES:
        message = "too large"
    elif expected != expected.to_integral_value():
        message = "whole number of millicores"
    else:
        assert parse_cpu(text) == int(expected)
        return
    with pytest.raises(QuantityError, match=message):
        parse_cpu(text)


@given(st.from_regex(rf"\A{NUMBER}(?:[KMGTPE]i|[kMGTPE])\Z"))
def test_well_formed_memory_matches_decimal_model(text: str) -> None:
    unit = text[-2:] if text.endswith("i") else text[-1]
    expected = _exact(text[: -len(unit)], BYTE_UNITS[unit])
    if expected == 0:
        message = "greater than zero"
    elif expected > MAX_BYTES:
        message = "too large"
    else:
        assert parse_memory(text) == math.ceil(expected)
        return
    with pytest.raises(QuantityError, match=message):
        parse_memory(text)
