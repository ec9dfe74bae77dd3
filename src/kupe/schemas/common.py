"""Shared base for wire models: camelCase on the wire, unknown fields rejected."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

# How deeply any JSON value in a request may nest (objects and arrays, the value itself
# counting as one level); the server refuses deeper bodies before parsing them.
MAX_NESTING = 32
# NUL cannot be stored in PostgreSQL text and lone surrogates cannot be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# C0, DEL and C1 controls: a terminal acts on them (escape sequences, bells, cursor moves).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def _nested(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [*value.keys(), *value.values()]
    if isinstance(value, list):
        return value
    return []


def _has_unstorable_text(value: Any) -> bool:
    # Iterative, so no input can exhaust the interpreter's recursion limit.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item) is not None:
                return True
        else:
            pending.extend(_nested(item))
    return False


def json_depth(value: Any) -> int:
    """How many levels `value` nests: a scalar is 1, `{"a": 1}` is 2 (iterative)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, level = pending.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            pending.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, level + 1) for child in item)
    return deepest


def check_display_name(value: str) -> str:
    """Display names end up on terminals: control characters are refused, not stored."""
    if CONTROL_CHARACTERS.search(value):
        raise PydanticCustomError("kupe_invalid", "displayName must not contain control characters")
    return value


def _utc_z(moment: datetime) -> str:
    """RFC 3339 in UTC with `Z`, whatever offset the value carries (naive means UTC)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")


# Every timestamp Kupe returns is UTC with `Z`, even one a client sent with an offset.
Timestamp = Annotated[datetime, PlainSerializer(_utc_z, return_type=str, when_used="json")]


class WireModel(BaseModel):
    """Base of every request and response body."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=False
    )

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        # Requests only (they forbid unknown fields); responses are trusted data.
        if cls.model_config.get("extra") == "forbid" and _has_unstorable_text(data):
            raise PydanticCustomError(
                "kupe_invalid", "text must not contain NUL characters or unpaired surrogates"
            )
        return data


class ResponseModel(WireModel):
    """Base of response bodies: clients ignore fields they do not know yet."""

    model_config = ConfigDict(extra="ignore")


class ErrorBody(ResponseModel):
    """Every error response: a human sentence, a stable code, and the offending field if any."""

    error: str = Field(description="Human-readable message.")
    code: str = Field(description="Stable machine-readable error code, e.g. VALIDATION_FAILED.")
    field: str | None = Field(None, description="Path of the invalid field, e.g. resources.cpu.")


T = TypeVar("T")


class ItemList(ResponseModel, Generic[T]):
    """A list response; `continue` is present when `limit` cut the list short."""

    items: list[T]
    continue_: str | None = Field(
        None,
        alias="continue",
        description="Opaque token for the next page; absent on the last page.",
    )
