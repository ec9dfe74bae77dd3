"""Frozen snapshots of rows that travel beyond the session that read them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kupe.core.phases import TenantPhase
from kupe.server.db.models import Tenant


@dataclass(frozen=True, slots=True)
class TenantRef:
    """A tenant as it was when the request authenticated: who it is, its plan and phase."""

    id: str
    name: str
    plan: str
    phase: TenantPhase
    contact_email: str
    created_at: datetime

    @classmethod
    def of(cls, row: Tenant) -> TenantRef:
        return cls(
            id=row.id,
            name=row.name,
            plan=row.plan,
            phase=TenantPhase(row.phase),
            contact_email=row.contact_email,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """Which version of which named object: a rendered view of it is valid while these match."""

    id: str
    resource_version: int
    name: str
