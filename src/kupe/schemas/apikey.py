"""API key wire models (API §5)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from kupe.schemas.common import ResponseModel, WireModel

Role = Literal["admin", "readonly"]


class ApiKeyCreate(WireModel):
    """Body of POST /apikeys."""

    display_name: str = Field(min_length=1, max_length=200)
    role: Role
    expires_at: datetime | None = Field(None, description="RFC 3339; must be in the future.")


class ApiKey(ResponseModel):
    """An API key's metadata; the raw key is never shown again after creation."""

    id: str
    display_name: str
    role: Role
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKey):
    """The answer to a create: metadata plus the raw `key`, shown only here."""

    key: str
