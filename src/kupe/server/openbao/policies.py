"""OpenBao ACL policies (HCL text) that Kupe installs per tenant, and the one Kupe itself needs."""

from __future__ import annotations

from kupe.server.openbao.paths import (
    DEFAULT_MOUNT_PREFIX,
    reader_role_name,
    validate_mount_prefix,
    writer_role_name,
)

__all__ = ["control_policy", "reader_policy", "writer_policy"]


def _rule(path: str, *capabilities: str) -> str:
    listed = ", ".join(f'"{capability}"' for capability in capabilities)
    return f'path "{path}" {{\n  capabilities = [{listed}]\n}}\n'


def reader_policy(mount: str) -> str:
    """Read any entry's current value in `mount` (and the mount's KV settings), nothing else."""
    # config: lets Kupe see when a new mount has finished setting itself up.
    return _rule(f"{mount}/data/*", "read") + _rule(f"{mount}/config", "read")


def writer_policy(mount: str) -> str:
    """What a tenant's people and pipelines need to keep their values in `mount`."""
    return "".join(
        [
            _rule(f"{mount}/data/*", "create", "read", "update", "delete"),
            _rule(f"{mount}/metadata/*", "read", "list", "delete"),
            _rule(f"{mount}/delete/*", "update"),
            _rule(f"{mount}/undelete/*", "update"),
            _rule(f"{mount}/destroy/*", "update"),
        ]
    )


def control_policy(prefix: str = DEFAULT_MOUNT_PREFIX) -> str:
    """The policy an operator gives Kupe's own AppRole (or token): manage tenant mounts,
    their policies and the two token roles; no access to any tenant's values."""
    validate_mount_prefix(prefix)
    return "".join(
        [
            _rule(f"sys/mounts/{prefix}*", "create", "read", "update"),
            _rule(f"sys/policies/acl/{prefix}*", "create", "read", "update"),
            _rule(f"auth/token/roles/{prefix}tenant-*", "create", "read", "update"),
            _rule(f"auth/token/create/{reader_role_name(prefix)}", "update"),
            _rule(f"auth/token/create/{writer_role_name(prefix)}", "update"),
        ]
    )
