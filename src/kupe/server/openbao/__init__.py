"""Kupe's OpenBao client: tenant KV v2 mounts, scoped reads and tenant writer tokens.

Infrastructure layer: like the providers it never sees the database, services or the API.
"""

from kupe.server.openbao.client import OpenBaoClient
from kupe.server.openbao.errors import (
    InvalidSecretPath,
    OpenBaoError,
    OpenBaoNotFound,
    OpenBaoPermissionDenied,
    OpenBaoRequestFailed,
    OpenBaoUnavailable,
)
from kupe.server.openbao.models import IssuedToken, SecretEntry
from kupe.server.openbao.paths import mount_name, secret_path_problem, validate_secret_path
from kupe.server.openbao.policies import control_policy
from kupe.server.openbao.settings import OpenBaoSettings

__all__ = [
    "InvalidSecretPath",
    "IssuedToken",
    "OpenBaoClient",
    "OpenBaoError",
    "OpenBaoNotFound",
    "OpenBaoPermissionDenied",
    "OpenBaoRequestFailed",
    "OpenBaoSettings",
    "OpenBaoUnavailable",
    "SecretEntry",
    "control_policy",
    "mount_name",
    "secret_path_problem",
    "validate_secret_path",
]
