"""Shared base for wire models: camelCase on the wire, unknown fields rejected."""

from __future__ import annotations

import re
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

# NUL cannot be stored in PostgreSQL text and lone surrogates cannot be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _has_unstorable_text(value: Any) -> bool:
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_unstorable_text(k) or _has_unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable_text(item) for item in value)
    return False


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
