"""The `webhooks` settings section (KUPE_WEBHOOKS__<FIELD>)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class WebhookSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    allow_private: bool = Field(
        False,
        description="Allow webhook URLs on loopback, link-local, private and unique-local "
        "addresses (and the metadata address); for tests and closed networks only.",
    )
    sealing_key: SecretStr | None = Field(
        None,
        description="Key that seals webhook signing secrets at rest (any string of 32+ "
        "characters); replicas must share it. Unset: a key generated in the data dir.",
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Longest wait for one delivery.")
    retry_base_seconds: float = Field(
        10.0, gt=0, description="Delay before the first retry of a failed delivery."
    )
    retry_max_seconds: float = Field(
        3600.0, gt=0, description="Longest delay between retries (exponential, jittered)."
    )
    give_up_seconds: float = Field(
        86400.0,
        gt=0,
        description="A hook whose deliveries fail for this long is disabled with a reason.",
    )
    poll_seconds: float = Field(
        1.0, gt=0, description="How often an idle hook looks for new events to deliver."
    )
    settle_seconds: float = Field(
        60.0,
        gt=0,
        description="Events younger than this are re-checked for late commits before a "
        "hook's delivery cursor passes them.",
    )
    batch: int = Field(20, ge=1, le=500, description="Events one pass delivers to one hook.")
    max_per_tenant: int = Field(
        20, ge=1, description="Webhooks one tenant may have (plans have no such limit)."
    )
    delivery_retention_days: float = Field(
        30.0, gt=0, description="Delivery attempts are kept this long."
    )

    def sealing_secret(self) -> str | None:
        return self.sealing_key.get_secret_value() if self.sealing_key else None
