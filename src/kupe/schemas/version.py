"""Kubernetes versions on offer (beyond the hosted API): what clusters may be created at."""

from __future__ import annotations

from pydantic import Field

from kupe.schemas.common import ResponseModel


class KubernetesVersion(ResponseModel):
    """One minor this installation offers."""

    version: str = Field(examples=["1.37"], description="The minor, as clusters name it.")
    kubernetes_version: str = Field(examples=["v1.37.2"], description="The patch it runs.")
    default: bool = Field(description="New clusters get this minor when they name none.")
