"""The webhook machinery on its own: which addresses the SSRF rule refuses, the signature's
exact format and its verification, sealing, and which outbox events become which types."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from pathlib import Path

import pytest

from kupe.core.signature import signature_header
from kupe.sdk.webhooks import SignatureError, verify
from kupe.server.sealing import Sealer, load_or_create_key
from kupe.server.webhooks.events import pattern_problem, subscribed, webhook_type
from kupe.server.webhooks.sealing import SealingError, SecretSealer
from kupe.server.webhooks.ssrf import UnsafeUrl, address_problem, check_url_shape, safe_address


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.169.254", "the cloud metadata address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("10.0.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd00::1", "a private address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("100.64.0.1", "a non-public address"),
        ("0.0.0.0", "a private address"),
        ("224.0.0.1", "a reserved address"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_rule(address: str, problem: str | None) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


async def test_urls_with_literal_addresses() -> None:
    assert str(await safe_address("https://93.184.215.14:8443/x?y=1", allow_private=False)) == (
        "93.184.215.14"
    )
    assert str(await safe_address("http://127.0.0.1:9/", allow_private=True)) == "127.0.0.1"
    for url in ("http://127.0.0.1/", "http://localhost./", "http://[::1]:80/"):
        with pytest.raises(UnsafeUrl):
            await safe_address(url, allow_private=False)
    assert check_url_shape("https://hooks.example.com/a") == ("https", "hooks.example.com", 443)
    for url in ("gopher://x/", "http:///nohost", "https://a b/", "http://[::1/"):
        with pytest.raises(UnsafeUrl):
            check_url_shape(url)


def test_signature_format_and_verification() -> None:
    body = json.dumps({"id": "ev-1", "type": "cluster.created"}).encode()
    header = signature_header("whsec_k", 1_700_000_000, body)
    digest = hmac.new(b"whsec_k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={digest}"
    headers = {"kupe-signature": header, "Kupe-Event-Id": "ev-1"}
    assert verify("whsec_k", headers, body, now=1_700_000_100)["type"] == "cluster.created"
    # Several v1 signatures (a secret being rotated): any one may match.
    rotated = {"Kupe-Signature": f"t=1700000000,v1={'0' * 64},v1={digest}"}
    assert verify("whsec_k", rotated, body, now=1_700_000_000)["id"] == "ev-1"
    for bad, now in (
        ({}, 1_700_000_000),
        ({"Kupe-Signature": "garbage"}, 1_700_000_000),
        ({"Kupe-Signature": "t=x,v1=ab"}, 1_700_000_000),
        ({"Kupe-Signature": header}, 1_700_000_301),
        ({"Kupe-Signature": header}, 1_699_999_600),
        ({"Kupe-Signature": header, "Kupe-Event-Id": "ev-2"}, 1_700_000_000),
    ):
        with pytest.raises(SignatureError):
            verify("whsec_k", bad, body, now=now)


def test_sealing(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    assert load_or_create_key(tmp_path) == key  # the server key: made once, then read
    assert (tmp_path / "server.key").stat().st_mode & 0o777 == 0o600
    sealer = SecretSealer(Sealer(key))
    sealed = sealer.seal("t1", "wh-1", "whsec_secret")
    assert "whsec_secret" not in sealed
    assert sealer.open("t1", "wh-1", sealed) == "whsec_secret"
    for tenant, hook in (("t2", "wh-1"), ("t1", "wh-2")):
        with pytest.raises(SealingError):
            sealer.open(tenant, hook, sealed)
    with pytest.raises(SealingError):
        SecretSealer.from_key("another-key-" * 4).open("t1", "wh-1", sealed)
    configured = SecretSealer.from_key("a-configured-key-" * 2)
    assert configured.open("t1", "wh-1", configured.seal("t1", "wh-1", "s")) == "s"
    with pytest.raises(ValueError, match="32"):
        SecretSealer.from_key("short")


def test_event_types_and_subscriptions() -> None:
    assert webhook_type("cluster", "ADDED", "Created") == "cluster.created"
    assert webhook_type("cluster", "MODIFIED", "Running") == "cluster.phase_changed"
    assert webhook_type("cluster", "MODIFIED", "Updated") == "cluster.updated"
    assert webhook_type("cluster", "MODIFIED", None) is None  # new metrics only
    assert webhook_type("apikey", "DELETED", None) == "apikey.revoked"
    assert webhook_type("apikey", "MODIFIED", None) is None
    assert webhook_type("member", "ADDED", None) == "member.added"
    assert subscribed(["*"], "secret.deleted")
    assert subscribed(["secret.*"], "secret.deleted")
    assert not subscribed(["secret.*", "cluster.created"], "cluster.deleted")
    assert pattern_problem("cluster.*") is None
    assert pattern_problem("cluster.exploded") is not None
    assert pattern_problem("nothing.*") is not None
