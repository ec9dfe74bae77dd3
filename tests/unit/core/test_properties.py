"""Property-based tests of the pure rules: names, quantities against their documented patterns,
JSON merge patch, ETag matching, continue tokens and API-key parsing.

Quantity parsing and formatting round trips live in test_quantity.py; ETag and continue-token
round trips in test_core.py. These add the laws those files do not state."""

from __future__ import annotations

import asyncio
import re
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kupe.core.clock import FakeClock
from kupe.core.errors import BadRequest, KupeError, PreconditionFailed, Unauthorized
from kupe.core.etag import check_if_match, etag, none_match, parse_etags
from kupe.core.merge_patch import merge_patch
from kupe.core.names import NAME_MAX, NAME_MIN, is_valid_name, name_problem
from kupe.core.pagination import decode_continue, encode_continue
from kupe.core.quantity import QuantityError, format_bytes, format_cpu, parse_cpu, parse_memory
from kupe.schemas.cluster import BYTES_SCHEMA, CPU_SCHEMA, NAME_SCHEMA
from kupe.server.services.auth import (
    API_KEY_ID_PATTERN,
    API_KEY_PATTERN,
    AuthService,
    generate_api_key,
    hash_api_key,
)

LABEL_CHARS = string.ascii_lowercase + string.digits + "-"
valid_names = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])\Z")


def _documented(schema: dict[str, Any]) -> re.Pattern[str]:
    return re.compile(str(schema["pattern"]))


# --- names -------------------------------------------------------------------------------


@given(valid_names)
def test_every_dns_label_is_accepted(name: str) -> None:
    assert is_valid_name(name)
    assert _documented(NAME_SCHEMA).fullmatch(name)


@given(st.text(max_size=80))
def test_name_rule_agrees_with_the_documented_pattern(text: str) -> None:
    documented = (
        NAME_MIN <= len(text) <= NAME_MAX
        and _documented(NAME_SCHEMA).fullmatch(text) is not None
        and "\n" not in text
    )
    assert is_valid_name(text) == documented
    problem = name_problem(text, "cluster name")
    assert (problem is None) == documented
    if problem is not None:
        assert problem.startswith("cluster name must")


@given(valid_names, st.sampled_from("еоаіѕсрхуΑΟаＡ０\u200b\u00a0/.\\_ %\x00"), st.data())
def test_one_foreign_character_spoils_a_name(name: str, foreign: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(name)))
    assert not is_valid_name(name[:at] + foreign + name[at:])


# --- quantities: what we format is what we document and what we parse --------------------


@given(st.integers(min_value=1, max_value=10**9))
def test_formatted_cpu_matches_the_documented_pattern(millicores: int) -> None:
    text = format_cpu(millicores)
    assert _documented(CPU_SCHEMA).fullmatch(text), text
    assert parse_cpu(text) == millicores


@given(st.integers(min_value=1, max_value=2**50).map(lambda n: n * 1024))
def test_formatted_bytes_match_the_documented_pattern(n: int) -> None:
    text = format_bytes(n)
    assert _documented(BYTES_SCHEMA).fullmatch(text), text
    assert parse_memory(text) == n


@given(st.text(max_size=24))
def test_anything_the_cpu_parser_accepts_fits_the_documented_pattern(text: str) -> None:
    try:
        parse_cpu(text)
    except QuantityError:
        return
    assert _documented(CPU_SCHEMA).fullmatch(text), text


# --- JSON merge patch (RFC 7396) ---------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=4)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


@given(objects, objects)
def test_merge_patch_is_idempotent(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


@given(objects, objects)
def test_merge_patch_touches_only_the_keys_it_names(
    target: dict[str, Any], patch: dict[str, Any]
) -> None:
    result = merge_patch(target, patch)
    for key, value in target.items():
        if key not in patch:
            assert result[key] == value
    for key, value in patch.items():
        if value is None:
            assert key not in result
        elif not isinstance(value, dict):
            assert result[key] == value


@given(objects, objects)
def test_merge_patch_never_mutates_its_inputs(
    target: dict[str, Any], patch: dict[str, Any]
) -> None:
    before = (repr(target), repr(patch))
    merge_patch(target, patch)
    assert (repr(target), repr(patch)) == before


@given(objects)
def test_patching_empty_with_a_document_yields_it_without_nulls(doc: dict[str, Any]) -> None:
    assert merge_patch({}, doc) == _without_nulls(doc)


@given(objects, objects)
def test_a_patch_that_sets_every_key_replaces_the_document(
    target: dict[str, Any], doc: dict[str, Any]
) -> None:
    """Null out what the target has and set what the doc has: the result is exactly the doc."""
    clean = _without_nulls(doc)
    patch: dict[str, Any] = dict.fromkeys(target)
    patch.update({k: v for k, v in clean.items() if not isinstance(v, dict)})
    patch.update({k: v for k, v in clean.items() if isinstance(v, dict)})
    replaced = merge_patch(merge_patch(target, dict.fromkeys(target)), clean)
    assert replaced == clean


# --- ETags and If-Match ------------------------------------------------------------------

versions = st.integers(min_value=0, max_value=10**18)


@given(versions, versions, st.booleans(), st.booleans())
def test_if_match_matches_only_the_current_version(
    current: int, offered: int, quoted: bool, weak: bool
) -> None:
    header = etag(offered) if quoted else str(offered)
    if weak and quoted:
        header = "W/" + header
    if current == offered:
        check_if_match(header, current)
        assert none_match(header, current)
    else:
        with pytest.raises(PreconditionFailed):
            check_if_match(header, current)
        assert not none_match(header, current)


@given(versions, st.lists(versions, max_size=5))
def test_a_list_of_etags_matches_when_any_does(current: int, others: list[int]) -> None:
    header = ", ".join(etag(v) for v in [*others, current])
    check_if_match(header, current)
    check_if_match("*", current)
    assert none_match(header, current)


@given(st.text(max_size=30), versions)
def test_if_match_only_ever_answers_400_or_412(header: str, current: int) -> None:
    try:
        check_if_match(header, current)
    except (BadRequest, PreconditionFailed):
        pass
    else:
        wanted = parse_etags(header)
        assert wanted is None or str(current) in wanted


# --- continue tokens ---------------------------------------------------------------------


@given(st.text(max_size=253))
def test_continue_token_round_trips_any_name(name: str) -> None:
    token = encode_continue(name)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert decode_continue(token) == name


@given(st.text(max_size=80))
def test_a_forged_continue_token_is_a_clean_400(token: str) -> None:
    error: KupeError | None = None
    try:
        decode_continue(token)
    except KupeError as exc:
        error = exc
    if error is not None:
        assert error.status == 400
        assert error.body()["field"] == "continue"


@given(st.lists(valid_names, min_size=2, max_size=20, unique=True))
def test_continue_tokens_preserve_name_order(names: list[str]) -> None:
    names.sort()
    decoded = [decode_continue(encode_continue(n)) for n in names]
    assert decoded == names


# --- API keys ----------------------------------------------------------------------------


def test_generated_keys_parse_and_name_their_id() -> None:
    for key in (generate_api_key() for _ in range(200)):
        match = API_KEY_PATTERN.match(key.raw)
        assert match is not None
        assert key.id == f"ak-{match.group(1)}"
        assert API_KEY_ID_PATTERN.match(key.id)
        assert key.hash == hash_api_key(key.raw)
        assert key.raw not in key.hash
        assert len(match.group(2)) >= 43


@given(st.data())
def test_any_single_character_change_breaks_the_key(data: st.DataObject) -> None:
    raw = generate_api_key().raw
    at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    replacement = data.draw(st.characters(codec="utf-8").filter(lambda c: c != raw[at]))
    forged = raw[:at] + replacement + raw[at + 1 :]
    assert hash_api_key(forged) != hash_api_key(raw)


def _authenticate(header: str) -> KupeError | None:
    service = AuthService(FakeClock())

    async def call() -> KupeError | None:
        try:
            await service.authenticate(None, header, "acme")  # type: ignore[arg-type]
        except KupeError as exc:
            return exc
        except AttributeError:  # reached the (absent) database: the header parsed as a key
            return None
        return None

    return asyncio.run(call())


@settings(max_examples=60)
@given(st.text(max_size=120))
def test_malformed_credentials_are_401_before_any_lookup(token: str) -> None:
    header = f"Bearer {token}"
    error = _authenticate(header)
    if API_KEY_PATTERN.match(token.strip()) and token.strip():
        assert error is None
    else:
        assert isinstance(error, Unauthorized)
        # The message is one of a few fixed sentences; it never echoes the token back.
        assert error.body()["error"] in {
            "Authorization must be 'Bearer <token>'",
            "Invalid API key",
        }


@settings(max_examples=30)
@given(st.sampled_from(["Basic", "bearer", "Token", "", "Bearer"]), st.text(max_size=10))
def test_the_scheme_must_be_bearer(scheme: str, junk: str) -> None:
    key = generate_api_key().raw
    error = _authenticate(f"{scheme} {key}{junk}")
    if scheme.lower() == "bearer" and API_KEY_PATTERN.match((key + junk).strip()):
        assert error is None
    else:
        assert isinstance(error, Unauthorized)
