"""What the client hands back: a KV entry and an issued tenant token, both without secrets in
their `repr`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from kupe.server.openbao.errors import OpenBaoRequestFailed
from kupe.server.openbao.transport import parse_time, require_int

__all__ = ["IssuedToken", "SecretEntry"]


@dataclass(frozen=True)
class SecretEntry:
    """The current version of one KV v2 entry: every key, values as text."""

    tenant: str
    path: str
    version: int
    data: Mapping[str, str] = field(repr=False)
    created_at: datetime | None = None

    def __repr__(self) -> str:
        return (
            f"SecretEntry(tenant={self.tenant!r}, path={self.path!r}, "
            f"version={self.version}, keys={sorted(self.data)!r})"
        )

    __str__ = __repr__

    @classmethod
    def from_kv(cls, tenant: str, path: str, data: Mapping[str, object], what: str) -> SecretEntry:
        """Build from the `data` of a KV v2 read; non-string values become JSON text."""
        values, metadata = data.get("data"), data.get("metadata")
        if not isinstance(values, dict) or not isinstance(metadata, dict):
            raise OpenBaoRequestFailed(f"{what}: OpenBao answered without data and metadata")
        text = {
            str(key): value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            for key, value in values.items()
        }
        return cls(
            tenant=tenant,
            path=path,
            version=require_int(metadata.get("version"), what),
            data=MappingProxyType(text),
            created_at=parse_time(metadata.get("created_time")),
        )


@dataclass(frozen=True)
class IssuedToken:
    """A token for a tenant's people or pipelines to write values into the tenant's mount."""

    token: str = field(repr=False)
    accessor: str
    tenant: str
    policies: tuple[str, ...]
    expires_at: datetime
