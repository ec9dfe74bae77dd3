"""Pure naming rules: tenant mounts, policy and role names, and `secretPath` validation.

A `secretPath` is relative to the tenant's KV v2 mount. The rules are an allowlist, so a path
that passes can only name an entry inside that mount, whatever the server does with the URL.
"""

from __future__ import annotations

import re
import string
import unicodedata

from kupe.core.names import name_problem
from kupe.server.openbao.errors import InvalidSecretPath

__all__ = [
    "DEFAULT_MOUNT_PREFIX",
    "MAX_SECRET_PATH_LENGTH",
    "SECRET_PATH_CHARACTERS",
    "kv_data_path",
    "mount_name",
    "reader_policy_name",
    "reader_role_name",
    "secret_path_problem",
    "validate_mount_prefix",
    "validate_secret_path",
    "validate_tenant",
    "writer_policy_name",
    "writer_role_name",
]

DEFAULT_MOUNT_PREFIX = "kupe-"
MAX_SECRET_PATH_LENGTH = 512
# Characters allowed inside a segment ('/' separates segments). No '%', '?', '#', '*' or
# non-ASCII: they invite double decoding, URL confusion, glob surprises or look-alike names.
SECRET_PATH_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.~@+=,:")
_PREFIX = re.compile(r"\A[a-z][a-z0-9-]{0,30}\Z")
_ALLOWED_TEXT = "ASCII letters, digits and -_.~@+=,: (with '/' between segments)"


def secret_path_problem(path: str) -> str | None:
    """Why `path` is not an allowed `secretPath`, or None when it is."""
    if not path:
        return "it is empty"
    if len(path) > MAX_SECRET_PATH_LENGTH:
        return f"it is {len(path)} characters long; at most {MAX_SECRET_PATH_LENGTH} are allowed"
    for index, char in enumerate(path):
        if unicodedata.category(char) == "Cc":
            return f"it contains a control character (U+{ord(char):04X}) at position {index}"
    if "\\" in path:
        return f"it contains a backslash at position {path.index(chr(92))}"
    if path.startswith("/"):
        return "it is absolute (starts with '/'); it must be relative to the tenant's mount"
    if "//" in path:
        return f"it contains an empty segment ('//') at position {path.index('//')}"
    if path.endswith("/"):
        return "it ends with '/' (an empty last segment); name an entry, not a folder"
    for segment in path.split("/"):
        if segment in {".", ".."}:
            return f"it contains a '{segment}' segment; paths may not climb out of the mount"
    for index, char in enumerate(path):
        if char != "/" and char not in SECRET_PATH_CHARACTERS:
            shown = repr(char) if char.isprintable() else "a non-printable character"
            return (
                f"it contains {shown} (U+{ord(char):04X}) at position {index}; "
                f"allowed are {_ALLOWED_TEXT}"
            )
    return None


def validate_secret_path(path: str) -> str:
    """Return `path` unchanged when allowed; raise InvalidSecretPath naming the problem."""
    problem = secret_path_problem(path)
    if problem is not None:
        raise InvalidSecretPath(problem)
    return path


def validate_tenant(tenant: str) -> str:
    """Return `tenant` when it is a valid Kupe tenant name; ValueError otherwise."""
    problem = name_problem(tenant, "tenant")
    if problem is not None:
        raise ValueError(problem)
    return tenant


def validate_mount_prefix(prefix: str) -> str:
    """Return `prefix` when it can start mount, policy and role names; ValueError otherwise."""
    if not _PREFIX.match(prefix):
        raise ValueError(
            "the OpenBao mount prefix must be 1 to 31 lower-case letters, digits or '-', "
            "starting with a letter"
        )
    return prefix


def mount_name(tenant: str, prefix: str = DEFAULT_MOUNT_PREFIX) -> str:
    """The tenant's KV v2 mount, e.g. `kupe-acme`."""
    return validate_mount_prefix(prefix) + validate_tenant(tenant)


def reader_policy_name(tenant: str, prefix: str = DEFAULT_MOUNT_PREFIX) -> str:
    """The policy of Kupe's per-tenant read token: read on the tenant's mount only."""
    return f"{mount_name(tenant, prefix)}-read"


def writer_policy_name(tenant: str, prefix: str = DEFAULT_MOUNT_PREFIX) -> str:
    """The policy of the tenant's own writers: read, write and list on its mount only."""
    return f"{mount_name(tenant, prefix)}-write"


def reader_role_name(prefix: str = DEFAULT_MOUNT_PREFIX) -> str:
    """The token role through which Kupe creates per-tenant read tokens."""
    return f"{validate_mount_prefix(prefix)}tenant-reader"


def writer_role_name(prefix: str = DEFAULT_MOUNT_PREFIX) -> str:
    """The token role through which Kupe issues tokens to a tenant's writers."""
    return f"{validate_mount_prefix(prefix)}tenant-writer"


def kv_data_path(mount: str, secret_path: str) -> str:
    """The HTTP API path (below `/v1/`) that reads `secret_path` in the KV v2 `mount`."""
    # Every allowed character is legal unescaped in a URL path (RFC 3986 unreserved,
    # sub-delimiters, ':' and '@'), so the URL carries exactly the validated text.
    return f"{mount}/data/{validate_secret_path(secret_path)}"
