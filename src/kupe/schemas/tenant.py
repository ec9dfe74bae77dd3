"""Tenant and member wire models (API §3, §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from kupe.schemas.common import ResponseModel
from kupe.schemas.plan import ResourceAmounts

Role = Literal["admin", "readonly"]


class MemberView(ResponseModel):
    email: str
    role: Role


class TenantStatus(ResponseModel):
    phase: Literal["Active", "Suspended", "Terminating"]
    cluster_count: int | None = None
    allocated_resources: ResourceAmounts | None = None
    pool_resources: ResourceAmounts | None = None
    current_usage: dict[str, Any] | None = None


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
    created_at: datetime
    status: TenantStatus
