"""The credentials a request can carry besides `Authorization`: the console's session cookie."""

from __future__ import annotations

from dataclasses import dataclass, field

SESSION_COOKIE = "kupe_session"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class SessionCredential:
    """A console session id from the cookie and the CSRF token the request sent (writes only
    succeed with the right one). Neither is ever printed."""

    session_id: str = field(repr=False)
    csrf_token: str | None = field(default=None, repr=False)
    write: bool = False


# What the scopes authenticate: a Bearer header, a console session, or nothing.
Credential = str | SessionCredential | None
