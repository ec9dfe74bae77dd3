"""Kupe's OpenBao client against a real OpenBao server (tests/support/openbao.py)."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest

from kupe.core.clock import FakeClock
from kupe.server.openbao import (
    InvalidSecretPath,
    OpenBaoClient,
    OpenBaoError,
    OpenBaoNotFound,
    OpenBaoPermissionDenied,
    OpenBaoRequestFailed,
    OpenBaoSettings,
    OpenBaoUnavailable,
    control_policy,
)
from tests.support.openbao import OpenBaoServer

CONTROL_POLICY = "kupe_control"  # outside the kupe-* names Kupe itself may write


def new_tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def bao_client(
    server: OpenBaoServer, transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> AsyncIterator[OpenBaoClient]:
    options.setdefault("token", server.root_token)
    settings = OpenBaoSettings(address=server.address, **options)
    async with OpenBaoClient(settings, transport=transport) as client:
        yield client


def kv_put(server: OpenBaoServer, tenant: str, path: str, data: dict[str, Any]) -> int:
    return server.kv_put(f"kupe-{tenant}", path, data)


def approle(server: OpenBaoServer, **role: Any) -> tuple[str, str, str]:
    """An AppRole role with Kupe's control policy: (role name, role_id, secret_id)."""
    server.root("PUT", f"sys/policies/acl/{CONTROL_POLICY}", {"policy": control_policy()})
    name = f"kupe-{uuid.uuid4().hex[:8]}"
    return name, *server.approle(name, [CONTROL_POLICY], **role)


@pytest.fixture
def bao(openbao: OpenBaoServer) -> Iterator[OpenBaoServer]:
    """The session server, for tests that stop, seal or freeze it; running again afterwards."""
    openbao.ensure_running()
    yield openbao
    openbao.ensure_running()


class CountingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await super().handle_async_request(request)


# -- mounts and policies -----------------------------------------------------------------------


async def test_ensure_tenant_makes_one_kv2_mount_and_its_policies(openbao: OpenBaoServer) -> None:
    tenant = new_tenant()
    async with bao_client(openbao) as client:
        await client.ensure_tenant(tenant)
        await client.ensure_tenant(tenant)
    mounts = openbao.root("GET", "sys/mounts").json()["data"]
    ours = [path for path in mounts if path.startswith(f"kupe-{tenant}")]
    assert ours == [f"kupe-{tenant}/"]
    assert mounts[ours[0]]["type"] == "kv"
    assert mounts[ours[0]]["options"]["version"] == "2"
    read = openbao.root("GET", f"sys/policies/acl/kupe-{tenant}-read").json()["data"]["policy"]
    write = openbao.root("GET", f"sys/policies/acl/kupe-{tenant}-write").json()["data"]["policy"]
    assert f'path "kupe-{tenant}/data/*"' in read
    for policy in (read, write):
        paths = [line for line in policy.splitlines() if line.startswith("path ")]
        assert all(line.startswith(f'path "kupe-{tenant}/') for line in paths)
    assert set(re.findall(r"capabilities = \[(.*)\]", read)) == {'"read"'}


async def test_concurrent_ensures_from_separate_clients_make_one_mount(
    openbao: OpenBaoServer,
) -> None:
    tenant = new_tenant()
    settings = OpenBaoSettings(openbao.address, token=openbao.root_token)
    clients = [OpenBaoClient(settings) for _ in range(4)]
    try:
        await asyncio.gather(*(client.ensure_tenant(tenant) for client in clients))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    mounts = openbao.root("GET", "sys/mounts").json()["data"]
    assert [path for path in mounts if path.startswith(f"kupe-{tenant}")] == [f"kupe-{tenant}/"]
    # Every ensure returned only once the mount served: a write right away is accepted.
    assert kv_put(openbao, tenant, "app", {"k": "v"}) == 1


async def test_a_mount_of_another_kind_is_reported(openbao: OpenBaoServer) -> None:
    tenant = new_tenant()
    openbao.root("POST", f"sys/mounts/kupe-{tenant}", {"type": "kv", "options": {"version": "1"}})
    async with bao_client(openbao) as client:
        with pytest.raises(OpenBaoRequestFailed, match="not a KV version 2"):
            await client.ensure_tenant(tenant)


# -- reading values ----------------------------------------------------------------------------


async def test_read_returns_every_key_and_the_current_version(openbao: OpenBaoServer) -> None:
    tenant = new_tenant()
    async with bao_client(openbao) as client:
        await client.ensure_tenant(tenant)
        first = {"username": "app", "password": "pw-1", "port": 5432, "tags": ["a", "b"]}
        assert kv_put(openbao, tenant, "team/db/prod", first) == 1
        entry = await client.read(tenant, "team/db/prod")
        assert (entry.tenant, entry.path, entry.version) == (tenant, "team/db/prod", 1)
        assert dict(entry.data) == {
            "username": "app",
            "password": "pw-1",
            "port": "5432",
            "tags": '["a", "b"]',
        }
        assert entry.created_at is not None
        assert kv_put(openbao, tenant, "team/db/prod", {"username": "app", "password": "pw-2"}) == 2
        entry = await client.read(tenant, "team/db/prod")
        assert entry.version == 2
        assert dict(entry.data) == {"username": "app", "password": "pw-2"}


async def test_read_creates_the_mount_on_first_use(openbao: OpenBaoServer) -> None:
    tenant = new_tenant()
    async with bao_client(openbao) as client:
        with pytest.raises(OpenBaoNotFound, match="no such entry"):
            await client.read(tenant, "app")
    assert f"kupe-{tenant}/" in openbao.root("GET", "sys/mounts").json()["data"]


async def test_not_found_deleted_and_destroyed_are_not_found(openbao: OpenBaoServer) -> None:
    tenant = new_tenant()
    async with bao_client(openbao) as client:
        await client.ensure_tenant(tenant)
        with pytest.raises(OpenBaoNotFound, match="no such entry"):
            await client.read(tenant, "missing")
        kv_put(openbao, tenant, "app", {"k": "v1"})
        kv_put(openbao, tenant, "app", {"k": "v2"})
        openbao.root("DELETE", f"kupe-{tenant}/data/app")
        with pytest.raises(OpenBaoNotFound, match="version 2 is deleted"):
            await client.read(tenant, "app")
        openbao.root("PUT", f"kupe-{tenant}/destroy/app", {"versions": [2]})
        with pytest.raises(OpenBaoNotFound, match="version 2 is destroyed"):
            await client.read(tenant, "app")


async def test_denied_is_not_not_found(openbao: OpenBaoServer) -> None:
    weak = openbao.root("POST", "auth/token/create", {"policies": ["default"], "ttl": "10m"})
    token = weak.json()["auth"]["client_token"]
    async with bao_client(openbao, token=token) as client:
        for call in (client.ensure_tenant(new_tenant()), client.read(new_tenant(), "app")):
            with pytest.raises(OpenBaoPermissionDenied) as denied:
                await call
            assert not isinstance(denied.value, OpenBaoNotFound)
            assert denied.value.transient is False


# -- isolation ---------------------------------------------------------------------------------


async def test_reader_tokens_reach_their_own_mount_only(openbao: OpenBaoServer) -> None:
    mine, other = new_tenant(), new_tenant()
    transport = CountingTransport()
    async with bao_client(openbao, transport=transport) as client:
        await client.ensure_tenant(other)
        kv_put(openbao, other, "x", {"value": "other-tenant-value"})
        await client.ensure_tenant(mine)
        kv_put(openbao, mine, "x", {"value": "mine"})
        assert (await client.read(mine, "x")).data["value"] == "mine"
        sent = transport.requests
        for crafted in ("../kupe-" + other + "/data/x", f"/kupe-{other}/data/x", "a//b", "a\\b"):
            with pytest.raises(InvalidSecretPath):
                await client.read(mine, crafted)
        assert transport.requests == sent  # refused before anything reached OpenBao
    (reader,) = openbao.tokens(meta_tenant=mine, meta_issued_by="kupe", orphan=False)
    assert reader["policies"] == [f"kupe-{mine}-read"]
    paths = [f"kupe-{mine}/data/x", f"kupe-{other}/data/x", f"kupe-{mine}/metadata/x"]
    paths += ["sys/mounts", "sys/policies/acl/x", "auth/token/create"]
    caps = openbao.root(
        "POST", "sys/capabilities-accessor", {"accessor": reader["accessor"], "paths": paths}
    ).json()["data"]
    assert caps[paths[0]] == ["read"]
    assert all(caps[path] == ["deny"] for path in paths[1:])
    # A token exactly like Kupe's (same role, same policy) against crafted raw URLs.
    token = openbao.root(
        "POST",
        "auth/token/create/kupe-tenant-reader",
        {"policies": [f"kupe-{mine}-read"], "no_default_policy": True, "ttl": "5m"},
    ).json()["auth"]["client_token"]
    for target in (
        f"/v1/kupe-{other}/data/x",
        f"/v1/kupe-{mine}/data/../../kupe-{other}/data/x",
        f"/v1/kupe-{mine}/data/x/../../../kupe-{other}/data/x",
        f"/v1/kupe-{mine}/data/..%2f..%2fkupe-{other}%2fdata%2fx",
        f"/v1/kupe-{mine}/data/%2e%2e/%2e%2e/kupe-{other}/data/x",
        f"/v1/kupe-{mine}/data//../kupe-{other}/data/x",
        f"/v1/kupe-{mine}/data/..\\..\\kupe-{other}\\data\\x",
    ):
        status, location, body = openbao.raw_get(target, token)
        if location:  # OpenBao redirects to the cleaned path; following it must not help
            status, _, body = openbao.raw_get(location, token)
        assert status in {400, 403, 404}, (target, status)
        assert "other-tenant-value" not in body


async def test_tenant_writer_token_keeps_to_its_mount(openbao: OpenBaoServer) -> None:
    mine, other = new_tenant(), new_tenant()
    async with bao_client(openbao) as client:
        await client.ensure_tenant(other)
        issued = await client.issue_tenant_token(mine, timedelta(hours=1))
        assert issued.policies == (f"kupe-{mine}-write",)
        writer = {"X-Vault-Token": issued.token}
        async with httpx.AsyncClient(base_url=f"{openbao.address}/v1/", headers=writer) as http:
            put = await http.put(f"kupe-{mine}/data/app", json={"data": {"api_key": "k-1"}})
            assert put.status_code == 200
            listed = await http.request("LIST", f"kupe-{mine}/metadata/")
            assert listed.json()["data"]["keys"] == ["app"]
            assert (await client.read(mine, "app")).data == {"api_key": "k-1"}
            for method, path, body in [
                ("GET", f"kupe-{other}/data/x", None),
                ("PUT", f"kupe-{other}/data/x", {"data": {"a": "b"}}),
                ("LIST", f"kupe-{other}/metadata/", None),
                ("POST", f"kupe-{mine}/config", {"max_versions": 1}),
                ("GET", "sys/mounts", None),
                ("POST", "sys/mounts/evil", {"type": "kv"}),
                ("PUT", "sys/policies/acl/evil", {"policy": 'path "*" {}'}),
                ("POST", "auth/token/create", {}),
                ("POST", "auth/token/create/kupe-tenant-writer", {}),
            ]:
                answer = await http.request(method, path, json=body)
                assert answer.status_code == 403, (method, path)
    (looked,) = openbao.tokens(accessor=issued.accessor)
    assert looked["orphan"] is True
    assert sorted(looked["policies"]) == ["default", f"kupe-{mine}-write"]
    assert 3500 <= looked["ttl"] <= 3600


# -- credentials -------------------------------------------------------------------------------


async def test_approle_with_the_control_policy_can_do_everything(openbao: OpenBaoServer) -> None:
    role, role_id, secret_id = approle(openbao, token_ttl="10m")
    tenant = new_tenant()
    async with bao_client(openbao, token=None, role_id=role_id, secret_id=secret_id) as client:
        await client.ensure_tenant(tenant)
        kv_put(openbao, tenant, "app", {"k": "v"})
        assert (await client.read(tenant, "app")).data == {"k": "v"}
        issued = await client.issue_tenant_token(tenant, timedelta(minutes=5))
        assert openbao.tokens(accessor=issued.accessor)
        assert len(openbao.tokens(meta_role_name=role)) == 1
    # aclose revoked the login, and with it the read token it had made.
    assert openbao.tokens(meta_role_name=role) == []
    assert openbao.tokens(meta_tenant=tenant, orphan=False) == []


async def test_a_wrong_approle_secret_is_denied(openbao: OpenBaoServer) -> None:
    _, role_id, _ = approle(openbao)
    wrong = str(uuid.uuid4())
    async with bao_client(openbao, token=None, role_id=role_id, secret_id=wrong) as client:
        with pytest.raises(OpenBaoPermissionDenied, match="login was refused") as denied:
            await client.ensure_tenant(new_tenant())
    assert wrong not in str(denied.value)


async def test_a_revoked_login_is_replaced_transparently(openbao: OpenBaoServer) -> None:
    role, role_id, secret_id = approle(openbao, token_ttl="10m")
    tenant = new_tenant()
    async with bao_client(openbao, token=None, role_id=role_id, secret_id=secret_id) as client:
        await client.ensure_tenant(tenant)
        kv_put(openbao, tenant, "app", {"k": "v1"})
        assert (await client.read(tenant, "app")).version == 1
        (login,) = openbao.tokens(meta_role_name=role)
        # Revoking Kupe's login also revokes its child read tokens.
        openbao.root("POST", "auth/token/revoke-accessor", {"accessor": login["accessor"]})
        kv_put(openbao, tenant, "app", {"k": "v2"})
        assert (await client.read(tenant, "app")).data == {"k": "v2"}
        (again,) = openbao.tokens(meta_role_name=role)
        assert again["accessor"] != login["accessor"]


async def test_a_login_is_renewed_before_it_expires(openbao: OpenBaoServer) -> None:
    role, role_id, secret_id = approle(openbao, token_ttl="10m", token_max_ttl="1h")
    clock = FakeClock()
    settings = OpenBaoSettings(openbao.address, role_id=role_id, secret_id=secret_id)
    async with OpenBaoClient(settings, clock=clock) as client:
        await client.ensure_tenant(new_tenant())
        (login,) = openbao.tokens(meta_role_name=role)
        clock.advance(6 * 60)
        await client.ensure_tenant(new_tenant())
        (same,) = openbao.tokens(meta_role_name=role)
        assert "last_renewal" not in login
        assert "last_renewal" not in same  # not renewed yet
        clock.advance(60)  # past two thirds of its ten minutes
        await client.ensure_tenant(new_tenant())
        (renewed,) = openbao.tokens(meta_role_name=role)
        assert renewed["accessor"] == login["accessor"]  # renewed, not replaced
        assert "last_renewal" in renewed


async def test_a_revoked_reader_token_is_replaced_transparently(openbao: OpenBaoServer) -> None:
    tenant = new_tenant()
    async with bao_client(openbao) as client:
        await client.ensure_tenant(tenant)
        kv_put(openbao, tenant, "app", {"k": "v"})
        await client.read(tenant, "app")
        (reader,) = openbao.tokens(meta_tenant=tenant, orphan=False)
        openbao.root("POST", "auth/token/revoke-accessor", {"accessor": reader["accessor"]})
        assert (await client.read(tenant, "app")).data == {"k": "v"}
        (fresh,) = openbao.tokens(meta_tenant=tenant, orphan=False)
        assert fresh["accessor"] != reader["accessor"]


async def test_reader_token_is_replaced_before_it_expires(openbao: OpenBaoServer) -> None:
    tenant, clock = new_tenant(), FakeClock()
    settings = OpenBaoSettings(
        openbao.address, token=openbao.root_token, reader_token_ttl=timedelta(minutes=30)
    )
    async with OpenBaoClient(settings, clock=clock) as client:
        await client.ensure_tenant(tenant)
        kv_put(openbao, tenant, "app", {"k": "v"})
        await client.read(tenant, "app")
        (first,) = openbao.tokens(meta_tenant=tenant, orphan=False)
        clock.advance(19 * 60)
        await client.read(tenant, "app")
        assert [t["accessor"] for t in openbao.tokens(meta_tenant=tenant)] == [first["accessor"]]
        clock.advance(2 * 60)  # past two thirds of its 30 minutes
        await client.read(tenant, "app")
        accessors = {t["accessor"] for t in openbao.tokens(meta_tenant=tenant)}
        assert len(accessors) == 2
        assert first["accessor"] in accessors


# -- the harness ---------------------------------------------------------------------------------


def test_the_server_keeps_its_files_private(openbao: OpenBaoServer) -> None:
    assert openbao.workdir.stat().st_mode & 0o777 == 0o700
    for path in openbao.workdir.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o077 == 0, path
            assert openbao.root_token.encode() not in path.read_bytes(), path
    assert openbao.root_token.startswith("s.")  # server-generated, never a fixed value


# -- outages -----------------------------------------------------------------------------------


async def test_stopped_openbao_is_transient_and_recovers(bao: OpenBaoServer) -> None:
    tenant = new_tenant()
    async with bao_client(bao, timeout=2.0) as client:
        await client.ensure_tenant(tenant)
        kv_put(bao, tenant, "app", {"k": "v"})
        assert (await client.read(tenant, "app")).version == 1
        bao.stop()
        for call in (client.read(tenant, "app"), client.ensure_tenant(new_tenant())):
            began = time.monotonic()
            with pytest.raises(OpenBaoUnavailable, match="unreachable") as down:
                await call
            assert time.monotonic() - began < 2.0
            assert down.value.transient is True
        bao.start()
        entry = await client.read(tenant, "app")
        assert (entry.version, dict(entry.data)) == (1, {"k": "v"})
        await client.ensure_tenant(new_tenant())


async def test_sealed_openbao_is_transient(bao: OpenBaoServer) -> None:
    tenant = new_tenant()
    async with bao_client(bao) as client:
        await client.ensure_tenant(tenant)
        kv_put(bao, tenant, "app", {"k": "v"})
        bao.seal()
        with pytest.raises(OpenBaoUnavailable, match="sealed") as sealed:
            await client.read(tenant, "app")
        assert sealed.value.transient is True
        bao.unseal()
        assert (await client.read(tenant, "app")).data == {"k": "v"}


async def test_hung_openbao_times_out_within_the_timeout(bao: OpenBaoServer) -> None:
    tenant = new_tenant()
    async with bao_client(bao, timeout=1.0) as client:
        await client.ensure_tenant(tenant)
        kv_put(bao, tenant, "app", {"k": "v"})
        await client.read(tenant, "app")
        bao.pause()
        began = time.monotonic()
        with pytest.raises(OpenBaoUnavailable, match="did not answer in time"):
            await client.read(tenant, "app")
        assert 1.0 <= time.monotonic() - began < 3.0
        bao.resume()
        assert (await client.read(tenant, "app")).data == {"k": "v"}


# -- nothing leaks -----------------------------------------------------------------------------


def _texts(value: object) -> Iterator[str]:
    yield str(value)
    yield repr(value)
    if isinstance(value, BaseException):
        yield from (repr(arg) for arg in value.args)
        for linked in (value.__cause__, value.__context__):
            if linked is not None:
                yield from _texts(linked)


async def test_no_token_or_value_in_errors_reprs_or_logs(
    openbao: OpenBaoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tenant, value = new_tenant(), f"value-{uuid.uuid4().hex}"
    _, role_id, secret_id = approle(openbao)
    settings = OpenBaoSettings(openbao.address, role_id=role_id, secret_id=secret_id)
    seen: list[object] = [settings, OpenBaoSettings(openbao.address, token=openbao.root_token)]
    async with OpenBaoClient(settings) as client:
        seen.append(client)
        await client.ensure_tenant(tenant)
        kv_put(openbao, tenant, "app", {"password": value})
        entry = await client.read(tenant, "app")
        issued = await client.issue_tenant_token(tenant, timedelta(minutes=5))
        seen += [entry, issued, entry.data.keys()]
        for failing in (client.read(tenant, "missing"), client.read(tenant, "../x")):
            with pytest.raises(OpenBaoError) as failed:
                await failing
            seen.append(failed.value)
    wrong = OpenBaoSettings(openbao.address, role_id=role_id, secret_id=value)
    async with OpenBaoClient(wrong) as client:
        with pytest.raises(OpenBaoPermissionDenied) as denied:
            await client.read(tenant, "app")
        seen.append(denied.value)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with OpenBaoClient(OpenBaoSettings(closed, token=openbao.root_token)) as client:
        with pytest.raises(OpenBaoUnavailable) as down:
            await client.read(tenant, "app")
        assert down.value.__cause__ is None
        assert down.value.__context__ is None
        seen.append(down.value)
    with pytest.raises(ValueError, match="whitespace") as bad:
        OpenBaoSettings(openbao.address, token=f"{value}\n")
    seen.append(bad.value)
    secrets = [openbao.root_token, secret_id, role_id, value, issued.token]
    texts = [text for item in seen for text in _texts(item)]
    texts += [record.getMessage() for record in caplog.records]
    for secret in secrets:
        assert not [text for text in texts if secret in text]
    assert entry.data["password"] == value  # the value itself is still there for the caller
