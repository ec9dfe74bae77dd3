"""Short-lived cluster credentials (beyond the hosted API): a token valid for one cluster only,
checked by the cluster's API server with Kupe; never a Kupe API key."""

from __future__ import annotations

from pydantic import Field

from kupe.schemas.common import ResponseModel, Timestamp, WireModel

DEFAULT_SECONDS = 15 * 60
MAX_SECONDS = 60 * 60


class CredentialRequest(WireModel):
    """Body of POST .../clusters/{name}/credentials (optional)."""

    expiration_seconds: int = Field(
        DEFAULT_SECONDS,
        ge=60,
        le=MAX_SECONDS,
        description="Lifetime of the token: 60 s to 1 h, default 15 min.",
    )


class ClusterCredential(ResponseModel):
    """How to reach a cluster's API server, and a token it accepts for the caller."""

    endpoint: str
    certificate_authority: str = Field(description="Base64 of the PEM CA certificate.")
    token: str = Field(description="Bearer token for this cluster only; shown once.")
    expires_at: Timestamp
