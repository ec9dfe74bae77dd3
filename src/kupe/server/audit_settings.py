"""The `audit` settings section (KUPE_AUDIT__<FIELD>)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AuditSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    retention_days: float = Field(
        30.0, gt=0, description="Audit entries older than this are pruned (in batches)."
    )
    prune_batch: int = Field(
        1000, ge=1, le=100_000, description="Most audit entries one pruning statement deletes."
    )
