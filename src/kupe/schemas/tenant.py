"""Tenant and member wire models (API §3, §6)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool

from kupe.schemas.billing import CurrentUsage
from kupe.schemas.common import ResponseModel, Timestamp, WireModel
from kupe.schemas.plan import ResourceAmounts

Role = Literal["admin", "readonly"]


class MemberView(ResponseModel):
    """A member of a tenant (API §6)."""

    email: str
    role: Role


class MemberCreate(WireModel):
    """Body of POST /members; the email is compared case-insensitively and stored lower-case."""

    email: str = Field(max_length=320, examples=["alice@example.com"])
    role: Role


class MemberUpdate(WireModel):
    """Body of PATCH /members/{email}."""

    role: Role


class TenantStatus(ResponseModel):
    phase: Literal["Active", "Suspended", "Terminating"]
    cluster_count: int | None = None
    allocated_resources: ResourceAmounts | None = None
    pool_resources: ResourceAmounts | None = None
    current_usage: CurrentUsage | None = None


class Tenant(ResponseModel):
    """A tenant: who it is, its plan and members, and what it holds."""

    name: str
    display_name: str
    contact_email: str
    plan: str
    enforce_metrics_limit: bool
    enforce_log_limit: bool
    members: list[MemberView] = Field(default_factory=list)
    resource_version: str
    created_at: Timestamp
    status: TenantStatus


class TenantDelete(WireModel):
    """Body of DELETE /tenants/{tenant} (the hosted API's): the tenant's name typed again."""

    confirm: str = Field(max_length=63, description="The tenant's name.")
    cascade: StrictBool = Field(False, description="Delete its clusters too.")


class TenantUpdate(WireModel):
    """Body of PATCH /tenants/{tenant}: at least one mutable field.

    `name`, `displayName` and `contactEmail` may be sent back unchanged (read-modify-write);
    a different value is rejected as immutable.
    """

    plan: str | None = None
    enforce_metrics_limit: StrictBool | None = None
    enforce_log_limit: StrictBool | None = None
    name: str | None = None
    display_name: str | None = None
    contact_email: str | None = None
