"""What can go wrong talking to OpenBao, as a small tree callers can branch on.

`transient` tells a caller whether to retry with backoff. Messages name the operation and the
path, never a token or a secret value.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "InvalidSecretPath",
    "OpenBaoError",
    "OpenBaoNotFound",
    "OpenBaoPermissionDenied",
    "OpenBaoRequestFailed",
    "OpenBaoUnavailable",
]


class OpenBaoError(Exception):
    """An OpenBao call did not succeed."""

    transient: ClassVar[bool] = False


class OpenBaoUnavailable(OpenBaoError):
    """OpenBao is unreachable, too slow, sealed, overloaded or failing (5xx): retry later."""

    transient = True


class OpenBaoNotFound(OpenBaoError):
    """No such entry, or its current version is deleted or destroyed."""


class OpenBaoPermissionDenied(OpenBaoError):
    """OpenBao refused the credential or the operation (also a failed AppRole login)."""


class OpenBaoRequestFailed(OpenBaoError):
    """Any other refusal that retrying will not fix (a bad request, a mount of the wrong type)."""


class InvalidSecretPath(OpenBaoError, ValueError):
    """A `secretPath` that could leave the tenant's mount or is otherwise not allowed."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid secretPath: {problem}")
        self.problem = problem
