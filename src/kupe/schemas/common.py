"""Shared base for wire models: camelCase on the wire, unknown fields rejected."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """Base of every request and response body."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=False
    )


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
