"""The audit log (API §11): who did what to a tenant, accepted or refused."""

from __future__ import annotations

from pydantic import Field

from kupe.schemas.common import ResponseModel, Timestamp


class AuditEntry(ResponseModel):
    """One mutating request of an authenticated caller of the tenant."""

    actor: str = Field(description="The member's email, or apikey:<id>, or operator.")
    client_ip: str = Field(description="The caller's address (as KUPE_TRUSTED_PROXIES allows).")
    request_id: str = Field(description="The request's X-Request-Id.")
    method: str = Field(description="HTTP method.")
    route: str = Field(description="Route template, e.g. /api/v1/tenants/{tenant}/clusters.")
    target: str | None = Field(None, description="What it acted on, e.g. clusters/web.")
    status: int = Field(description="The HTTP status Kupe answered.")
    time: Timestamp = Field(description="When the request was answered.")
