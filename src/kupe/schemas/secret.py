"""Managed secret wire models (API §7): definitions and sync targets; values live in OpenBao."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kupe.core.names import name_problem
from kupe.schemas.cluster import NAME_SCHEMA, Condition
from kupe.schemas.common import ResponseModel, Timestamp, WireModel

SecretPhase = Literal["Pending", "Active", "Degraded", "Deleting"]
TargetPhase = Literal["Pending", "Synced", "Error"]
# A Kubernetes namespace: a DNS-1123 label of at most 63 characters.
_LABEL = re.compile(r"\A[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
# A Secret's name: a DNS-1123 subdomain of at most 253 characters.
_SUBDOMAIN = re.compile(r"\A[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
MAX_TARGETS = 100


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("kupe_invalid", message)


class SyncTarget(WireModel):
    """Where a copy goes: a cluster of the same tenant, a namespace, and the Secret's name
    (default: the managed secret's name)."""

    cluster: str = Field(json_schema_extra=NAME_SCHEMA)
    namespace: str = Field(description="A Kubernetes namespace (DNS label, at most 63).")
    secret_name: str | None = Field(
        None, description="The Kubernetes Secret's name; absent: the managed secret's name."
    )

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, value: str) -> str:
        problem = name_problem(value, "cluster")
        if problem:
            raise _invalid(problem)
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if len(value) > 63 or not _LABEL.match(value):
            raise _invalid(
                "namespace must be a Kubernetes namespace name: lower-case letters, digits "
                "and '-', at most 63 characters, starting and ending with a letter or digit"
            )
        return value

    @field_validator("secret_name")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 253 or not _SUBDOMAIN.match(value)):
            raise _invalid(
                "secretName must be a Kubernetes Secret name: lower-case letters, digits, "
                "'-' and '.', at most 253 characters"
            )
        return value


def _unique(targets: list[SyncTarget] | None) -> list[SyncTarget] | None:
    if targets is None:
        return None
    if len(targets) > MAX_TARGETS:
        raise _invalid(f"sync may name at most {MAX_TARGETS} targets")
    return targets


class SecretCreate(WireModel):
    """Body of POST /secrets."""

    name: str = Field(json_schema_extra=NAME_SCHEMA)
    secret_path: str = Field(
        description="Path of the KV v2 entry in the tenant's OpenBao mount (kupe-<tenant>), "
        "relative to it; immutable."
    )
    sync: list[SyncTarget] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = name_problem(value)
        if problem:
            raise _invalid(problem)
        return value

    @field_validator("sync")
    @classmethod
    def _sync(cls, value: list[SyncTarget] | None) -> list[SyncTarget] | None:
        return _unique(value)


class SecretUpdate(WireModel):
    """Body of PATCH /secrets/{name}: `sync` replaces every target (`[]` stops syncing);
    `name` and `secretPath` may be sent back unchanged."""

    sync: list[SyncTarget] | None = None
    name: str | None = None
    secret_path: str | None = None

    @field_validator("sync")
    @classmethod
    def _sync(cls, value: list[SyncTarget] | None) -> list[SyncTarget] | None:
        return _unique(value)

    @model_validator(mode="after")
    def _something(self) -> SecretUpdate:
        if "sync" not in self.model_fields_set:
            raise _invalid("send sync (the list of targets; [] stops syncing)")
        return self


class SyncStatus(ResponseModel):
    """One target as the reconciler last saw it."""

    cluster: str
    namespace: str
    secret_name: str
    phase: TargetPhase
    message: str = ""
    last_synced_at: Timestamp | None = None
    source_version: int | None = Field(None, description="The KV v2 version the copy holds.")


class SecretStatus(ResponseModel):
    phase: SecretPhase = Field(description="Active: every target holds the current value.")
    conditions: list[Condition] = Field(default_factory=list)
    sync_statuses: list[SyncStatus] = Field(default_factory=list)


class Secret(ResponseModel):
    """A managed secret: which OpenBao value goes where."""

    name: str
    secret_path: str
    sync: list[SyncTarget] | None = Field(
        None, description="Absent when never set, [] when cleared."
    )
    resource_version: str
    created_at: Timestamp
    status: SecretStatus
