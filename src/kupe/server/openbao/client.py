"""Kupe's OpenBao client: tenant mounts and policies, scoped reads, tenant writer tokens.

Kupe's own credential only manages mounts, policies and tokens. Values are read with a child
token per tenant whose policy covers that tenant's mount alone, so a wrong path can never reach
another tenant's values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Final

import httpx

from kupe.core.clock import Clock, SystemClock
from kupe.server.openbao.credential import KupeCredential, Lease
from kupe.server.openbao.errors import OpenBaoNotFound, OpenBaoRequestFailed, OpenBaoUnavailable
from kupe.server.openbao.models import IssuedToken, SecretEntry
from kupe.server.openbao.paths import (
    kv_data_path,
    mount_name,
    reader_policy_name,
    reader_role_name,
    validate_secret_path,
    validate_tenant,
    writer_policy_name,
    writer_role_name,
)
from kupe.server.openbao.policies import reader_policy, writer_policy
from kupe.server.openbao.settings import OpenBaoSettings
from kupe.server.openbao.transport import Reply, Transport, require_int, require_text

__all__ = ["OpenBaoClient"]

_MAX_WRITER_TTL: Final = timedelta(days=366)


class OpenBaoClient:
    """Async OpenBao client for one Kupe process; safe to share between tasks."""

    def __init__(
        self,
        settings: OpenBaoSettings,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._clock: Clock = clock or SystemClock()
        self._http = Transport(settings, self._known_secrets, transport)
        self._credential = KupeCredential(settings, self._http, self._clock)
        self._readers: dict[str, Lease] = {}
        self._reader_locks: dict[str, asyncio.Lock] = {}
        self._roles_ready = False
        self._roles_lock = asyncio.Lock()

    def __repr__(self) -> str:
        auth = "approle" if self._settings.uses_approle else "token"
        return f"OpenBaoClient(address={self._settings.address!r}, auth={auth!r})"

    async def __aenter__(self) -> OpenBaoClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- public operations ---------------------------------------------------------------------

    async def ensure_tenant(self, tenant: str) -> None:
        """Create the tenant's KV v2 mount if missing and (re)write its two policies; returns
        once the mount serves. Idempotent and safe when several processes do it at once."""
        mount = mount_name(validate_tenant(tenant), self._settings.mount_prefix)
        if await self._ensure_mount(tenant, mount):
            # Also when another process created it a moment ago: wait until it serves.
            await self._wait_until_serving(mount, await self._reader_token(tenant))

    async def read(self, tenant: str, path: str) -> SecretEntry:
        """The current version of `path` in the tenant's mount, read with the tenant's token.

        Non-string values (numbers, objects) come back JSON-encoded.
        """
        mount = mount_name(validate_tenant(tenant), self._settings.mount_prefix)
        api_path = kv_data_path(mount, validate_secret_path(path))
        what = f"reading {mount}/{path}"
        for attempt in range(2):
            token = await self._reader_token(tenant)
            reply = await self._http.send("GET", api_path, token=token, what=what)
            if reply.status == 403 and attempt == 0:
                # Revoked or expired under us (also when Kupe's own token went): replace once.
                self._forget_reader(tenant, token)
                continue
            break
        if reply.status == 404 and "no handler for route" in reply.message.lower():
            # Just created or removed behind Kupe's back: the next token re-creates the mount.
            self._forget_reader(tenant, token)
            raise OpenBaoUnavailable(f"{what}: the tenant's mount is not serving")
        if reply.status == 404:
            raise OpenBaoNotFound(f"{what}: {self._absence(reply)}")
        reply.raise_for_status(what)
        return SecretEntry.from_kv(tenant, path, reply.data, what)

    async def issue_tenant_token(self, tenant: str, ttl: timedelta) -> IssuedToken:
        """A token with read/write/list on the tenant's mount only, valid for `ttl`."""
        validate_tenant(tenant)
        if not timedelta(minutes=1) <= ttl <= _MAX_WRITER_TTL:
            raise ValueError("a tenant token's ttl must be between one minute and 366 days")
        await self.ensure_tenant(tenant)
        policy = writer_policy_name(tenant, self._settings.mount_prefix)
        seconds = int(ttl.total_seconds())
        body = {
            "policies": [policy],
            "ttl": f"{seconds}s",
            "explicit_max_ttl": f"{seconds}s",
            "renewable": False,
            "display_name": f"{tenant}-writer",
            "meta": {"tenant": tenant, "issued_by": "kupe"},
        }
        what = f"issuing a writer token for tenant {tenant}"
        role = writer_role_name(self._settings.mount_prefix)
        reply = await self._as_kupe("POST", f"auth/token/create/{role}", json=body, what=what)
        reply.raise_for_status(what)
        auth = reply.auth(what)
        lifetime = require_int(auth.get("lease_duration"), what)
        return IssuedToken(
            token=require_text(auth.get("client_token"), what),
            accessor=require_text(auth.get("accessor"), what),
            tenant=tenant,
            policies=(policy,),
            expires_at=self._clock.now() + timedelta(seconds=lifetime),
        )

    async def aclose(self) -> None:
        """Close connections; an AppRole login token is revoked (best effort), with its
        child read tokens."""
        self._readers.clear()
        try:
            await self._credential.release()
        finally:
            await self._http.aclose()

    # -- Kupe's own credential -----------------------------------------------------------------

    async def _as_kupe(
        self, method: str, path: str, *, what: str, json: object | None = None
    ) -> Reply:
        for attempt in range(2):
            token = await self._credential.token()
            reply = await self._http.send(method, path, token=token, json=json, what=what)
            if reply.status == 403 and attempt == 0 and self._credential.can_log_in_again:
                # An expired or revoked login: log in again once before calling it a denial.
                self._credential.forget(token)
                continue
            return reply
        return reply

    # -- per-tenant read tokens ----------------------------------------------------------------

    async def _reader_token(self, tenant: str) -> str:
        lease = self._readers.get(tenant)
        if lease is not None and not lease.due(self._clock.now()):
            return lease.token
        mount = mount_name(tenant, self._settings.mount_prefix)
        lock = self._reader_locks.setdefault(tenant, asyncio.Lock())
        async with lock:
            lease = self._readers.get(tenant)
            if lease is not None and not lease.due(self._clock.now()):
                return lease.token
            # A new token also re-asserts mount and policies, so a mount removed behind
            # Kupe's back comes back with the next token.
            created = await self._ensure_mount(tenant, mount)
            lease = await self._create_reader(tenant)
            if created:
                await self._wait_until_serving(mount, lease.token)
            self._readers[tenant] = lease
            return lease.token

    async def _ensure_mount(self, tenant: str, mount: str) -> bool:
        """Mount and policies in place; True when the mount was not there at first look."""
        await self._ensure_roles()
        what = f"checking mount {mount}"
        reply = await self._as_kupe("GET", f"sys/mounts/{mount}", what=what)
        missing = reply.status == 400 and "no secret engine mount" in reply.message.lower()
        if missing:
            options = {"type": "kv", "options": {"version": "2"}}
            body = {**options, "description": f"Kupe managed secrets of tenant {tenant}"}
            what = f"creating mount {mount}"
            created = await self._as_kupe("POST", f"sys/mounts/{mount}", json=body, what=what)
            if created.status == 400 and "already in use" in created.message.lower():
                # Another process won the race; make sure what it made is what we want.
                what = f"checking mount {mount}"
                reply = await self._as_kupe("GET", f"sys/mounts/{mount}", what=what)
            else:
                created.raise_for_status(what)
                reply = created
        if reply.status != 204:
            reply.raise_for_status(what)
            self._check_kv2(mount, reply.data)
        prefix = self._settings.mount_prefix
        for name, text in (
            (reader_policy_name(tenant, prefix), reader_policy(mount)),
            (writer_policy_name(tenant, prefix), writer_policy(mount)),
        ):
            what = f"writing policy {name}"
            written = await self._as_kupe(
                "PUT", f"sys/policies/acl/{name}", json={"policy": text}, what=what
            )
            written.raise_for_status(what)
        return missing

    async def _wait_until_serving(self, mount: str, token: str) -> None:
        # A new KV v2 mount answers "upgrading" (or is not routed) for a moment; waiting here
        # means whoever writes right after ensure_tenant is not refused.
        what = f"waiting for mount {mount}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.timeout
        delay = 0.02
        while True:
            try:
                reply = await self._http.send("GET", f"{mount}/config", token=token, what=what)
            except OpenBaoUnavailable:
                if loop.time() + delay > deadline:
                    raise
            else:
                if reply.status != 404:
                    reply.raise_for_status(what)
                    return
                if loop.time() + delay > deadline:
                    raise OpenBaoUnavailable(f"{what}: it is not serving yet")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _create_reader(self, tenant: str) -> Lease:
        prefix = self._settings.mount_prefix
        seconds = int(self._settings.reader_token_ttl.total_seconds())
        body = {
            "policies": [reader_policy_name(tenant, prefix)],
            "ttl": f"{seconds}s",
            "no_default_policy": True,
            "renewable": False,
            "display_name": f"{tenant}-reader",
            "meta": {"tenant": tenant, "issued_by": "kupe"},
        }
        what = f"creating the read token of tenant {tenant}"
        path = f"auth/token/create/{reader_role_name(prefix)}"
        reply = await self._as_kupe("POST", path, json=body, what=what)
        reply.raise_for_status(what)
        auth = reply.auth(what)
        ttl = require_int(auth.get("lease_duration"), what)
        token = require_text(auth.get("client_token"), what)
        return Lease.starting(self._clock.now(), token, ttl, renewable=False)

    def _forget_reader(self, tenant: str, token: str) -> None:
        lease = self._readers.get(tenant)
        if lease is not None and lease.token == token:
            del self._readers[tenant]

    async def _ensure_roles(self) -> None:
        if self._roles_ready:
            return
        async with self._roles_lock:
            if self._roles_ready:
                return
            prefix = self._settings.mount_prefix
            common = {"renewable": False, "token_type": "service"}
            roles = {
                # Children of Kupe's token: revoking Kupe's credential revokes them all.
                reader_role_name(prefix): {
                    **common,
                    "allowed_policies_glob": [f"{prefix}*-read"],
                    "orphan": False,
                    "token_no_default_policy": True,
                },
                # Orphans: a tenant's token must outlive Kupe's short AppRole logins.
                writer_role_name(prefix): {
                    **common,
                    "allowed_policies_glob": [f"{prefix}*-write"],
                    "orphan": True,
                },
            }
            for name, body in roles.items():
                what = f"writing token role {name}"
                path = f"auth/token/roles/{name}"
                reply = await self._as_kupe("POST", path, json=body, what=what)
                reply.raise_for_status(what)
            self._roles_ready = True

    # -- helpers -------------------------------------------------------------------------------

    def _known_secrets(self) -> list[str]:
        settings = self._settings
        held = [settings.token, settings.role_id, settings.secret_id]
        held.append(self._credential.held)
        held.extend(lease.token for lease in self._readers.values())
        return [value for value in held if value]

    @staticmethod
    def _check_kv2(mount: str, data: Mapping[str, object]) -> None:
        options = data.get("options")
        version = options.get("version") if isinstance(options, dict) else None
        if data.get("type") != "kv" or version != "2":
            raise OpenBaoRequestFailed(
                f"mount {mount} exists but is not a KV version 2 secrets engine "
                f"(type {data.get('type')!r}, version {version!r})"
            )

    @staticmethod
    def _absence(reply: Reply) -> str:
        metadata = reply.data.get("metadata")
        if isinstance(metadata, dict):
            version = metadata.get("version")
            if metadata.get("destroyed") is True:
                return f"its current version {version} is destroyed"
            if metadata.get("deletion_time"):
                return f"its current version {version} is deleted"
        return "no such entry"
