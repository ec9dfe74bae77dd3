"""HTTP to OpenBao: one request at a time, failures mapped onto the error tree.

Errors are raised outside any `except` block, so no httpx exception (whose request carries
the token header) hangs off them as a cause or context.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import httpx

from kupe.server.openbao.errors import (
    OpenBaoError,
    OpenBaoNotFound,
    OpenBaoPermissionDenied,
    OpenBaoRequestFailed,
    OpenBaoUnavailable,
)
from kupe.server.openbao.settings import OpenBaoSettings

__all__ = ["Reply", "Transport", "parse_time", "require_int", "require_text"]

_MAX_MESSAGE: Final = 200
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True)
class Reply:
    """A 2xx or 4xx answer (transient failures never get this far)."""

    status: int
    body: Mapping[str, object]
    # What OpenBao said went wrong, secrets removed; "" on success.
    message: str

    @property
    def data(self) -> Mapping[str, object]:
        data = self.body.get("data")
        return data if isinstance(data, dict) else {}

    def auth(self, what: str) -> Mapping[str, object]:
        """The `auth` block of a login or token creation."""
        auth = self.body.get("auth")
        if not isinstance(auth, dict):
            raise OpenBaoRequestFailed(f"{what}: OpenBao answered without an auth block")
        return auth

    def raise_for_status(self, what: str) -> None:
        """Raise the matching OpenBaoError unless the request succeeded."""
        if 200 <= self.status < 300:
            return
        said = f" ({self.message})" if self.message else ""
        if self.status == 403:
            raise OpenBaoPermissionDenied(f"{what}: permission denied{said}")
        if self.status == 404:
            raise OpenBaoNotFound(f"{what}: not found{said}")
        raise OpenBaoRequestFailed(f"{what}: OpenBao answered {self.status}{said}")


def parse_time(value: object) -> datetime | None:
    """An OpenBao timestamp (RFC 3339, nanoseconds) as a datetime; None when absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", value))
    except ValueError:
        return None


class Transport:
    """Sends requests to one OpenBao; never follows redirects, never reads the environment."""

    def __init__(
        self,
        settings: OpenBaoSettings,
        secrets: Callable[[], list[str]],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._address = settings.address.rstrip("/")
        self._timeout = settings.timeout
        self._approle_mount = settings.approle_mount
        self._secrets = secrets
        # trust_env=False: no proxy, netrc or CA variables from the environment decide where
        # Kupe's token goes. Redirects are not followed, so the token stays on this address.
        self._client = httpx.AsyncClient(
            base_url=f"{self._address}/v1/",
            timeout=settings.timeout,
            follow_redirects=False,
            trust_env=False,
            verify=settings.ca_file if settings.ca_file else True,
            headers={"X-Vault-Request": "true"},
            transport=transport,
        )

    async def send(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        what: str,
        json: object | None = None,
        time_limit: float | None = None,
    ) -> Reply:
        """One request; raises OpenBaoUnavailable for anything worth retrying."""
        headers = {"X-Vault-Token": token} if token else {}
        failure: str | None = None
        try:
            response = await self._client.request(
                method,
                path,
                json=json,
                headers=headers,
                timeout=time_limit if time_limit is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException:
            failure = f"OpenBao at {self._address} did not answer in time"
        except httpx.ConnectError as exc:
            failure = f"OpenBao at {self._address} is unreachable ({self._redact(str(exc))})"
        except httpx.TransportError as exc:
            # Only the class name: some transport errors quote the request's headers.
            failure = f"the connection to OpenBao at {self._address} failed ({type(exc).__name__})"
        if failure is not None:
            raise OpenBaoUnavailable(f"{what}: {failure}")
        body = self._body(response)
        message = self._message(body)
        status = response.status_code
        if status == 503 and "sealed" in message.lower():
            raise OpenBaoUnavailable(f"{what}: OpenBao is sealed")
        if status >= 500 or status in {412, 429}:
            said = f" ({message})" if message else ""
            raise OpenBaoUnavailable(f"{what}: OpenBao answered {status}{said}")
        if status == 400 and "from non-versioned to versioned data" in message.lower():
            # A brand-new KV v2 mount refuses requests until it has set itself up.
            raise OpenBaoUnavailable(f"{what}: the KV mount is still being set up")
        if 300 <= status < 400:
            raise OpenBaoRequestFailed(f"{what}: OpenBao answered a redirect ({status})")
        return Reply(status, body, message)

    async def approle_login(self, role_id: str, secret_id: str) -> Mapping[str, object]:
        """Log in with AppRole; the `auth` block of the answer."""
        what = "logging in to OpenBao with AppRole"
        body = {"role_id": role_id, "secret_id": secret_id}
        path = f"auth/{self._approle_mount}/login"
        reply = await self.send("POST", path, token=None, json=body, what=what)
        if reply.status in {400, 403}:
            # OpenBao answers 400 for a wrong role or secret ID: it is a refused credential.
            said = f" ({reply.message})" if reply.message else ""
            raise OpenBaoPermissionDenied(f"{what}: the login was refused{said}")
        reply.raise_for_status(what)
        return reply.auth(what)

    async def lookup_self(self, token: str) -> tuple[int, bool]:
        """(seconds to live, renewable) of a fixed token; (0, False) when it may not look."""
        what = "looking up Kupe's OpenBao token"
        reply = await self.send("GET", "auth/token/lookup-self", token=token, what=what)
        if reply.status != 200:
            # A token without the default policy may not look itself up; it is still usable.
            return 0, False
        ttl = reply.data.get("ttl")
        return (ttl if isinstance(ttl, int) else 0), reply.data.get("renewable") is True

    async def renew_self(self, token: str, ttl: int) -> int | None:
        """Renew a token by `ttl` seconds; the new lifetime, or None when it was refused."""
        what = "renewing Kupe's OpenBao token"
        body = {"increment": f"{ttl}s"}
        reply = await self.send("POST", "auth/token/renew-self", token=token, json=body, what=what)
        if reply.status != 200:
            return None
        lifetime = reply.auth(what).get("lease_duration")
        return lifetime if isinstance(lifetime, int) else None

    async def revoke_self(self, token: str) -> None:
        """Revoke a token Kupe no longer needs; failures are ignored (it expires anyway)."""
        what = "revoking Kupe's OpenBao token"
        with contextlib.suppress(OpenBaoError):
            await self.send(
                "POST",
                "auth/token/revoke-self",
                token=token,
                what=what,
                time_limit=min(self._timeout, 2.0),
            )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _body(self, response: httpx.Response) -> Mapping[str, object]:
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _message(self, body: Mapping[str, object]) -> str:
        errors = body.get("errors")
        if not isinstance(errors, list):
            return ""
        # OpenBao wraps some errors as "1 error occurred:\n\t* permission denied\n\n".
        text = " ".join(str(error) for error in errors)
        text = re.sub(r"\d+ errors? occurred:", "", text).replace("*", " ")
        return self._redact(" ".join(text.split()))[:_MAX_MESSAGE]

    def _redact(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text


def require_int(value: object, what: str) -> int:
    """`value` when OpenBao sent an integer there; OpenBaoRequestFailed otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise OpenBaoRequestFailed(f"{what}: OpenBao answered without an expected number")


def require_text(value: object, what: str) -> str:
    """`value` when OpenBao sent a non-empty string there; OpenBaoRequestFailed otherwise."""
    if isinstance(value, str) and value:
        return value
    raise OpenBaoRequestFailed(f"{what}: OpenBao answered without an expected field")
