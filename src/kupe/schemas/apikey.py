"""API key wire models (API §5)."""

from __future__ import annotations

from datetime import UTC
from typing import Literal

from pydantic import AwareDatetime, Field, field_validator
from pydantic_core import PydanticCustomError

from kupe.schemas.common import ResponseModel, Timestamp, WireModel, check_display_name

Role = Literal["admin", "readonly"]


class ApiKeyCreate(WireModel):
    """Body of POST /apikeys."""

    display_name: str = Field(min_length=1, max_length=200)
    role: Role
    expires_at: AwareDatetime | None = Field(
        None, description="RFC 3339 with an offset (e.g. Z); must be in the future."
    )

    @field_validator("display_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("kupe_invalid", "displayName must not be blank")
        return check_display_name(value.strip())

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: AwareDatetime | None) -> AwareDatetime | None:
        # Stored and echoed in UTC, whatever offset the client wrote.
        return value.astimezone(UTC) if value is not None else None


class ApiKey(ResponseModel):
    """An API key's metadata; the raw key is never shown again after creation."""

    id: str
    display_name: str
    role: Role
    created_by: str
    created_at: Timestamp
    expires_at: Timestamp | None = None
    last_used_at: Timestamp | None = None


class ApiKeyCreated(ApiKey):
    """The answer to a create: metadata plus the raw `key`, shown only here."""

    key: str
