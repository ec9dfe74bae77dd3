"""A tenant's Alertmanager documents as plain JSON values: which values are credentials (masked
as `"<secret>"`), how a PUT's sentinels are restored from what is stored, and the effective
configuration Kupe renders for a tenant (Kupe's root route, the child routes, the receivers and
`global`).

Pure functions on JSON values; walks are iterative or bounded by the request nesting limit.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import urlsplit

SECRET: Final = "<secret>"  # noqa: S105 - the masking sentinel
# Kupe's receiver on every tenant's root route: it has no integrations, so an alert no child
# route takes goes nowhere. Tenants cannot define a receiver of this name.
DEFAULT_RECEIVER: Final = "kupe-default"
ROOT_ROUTE: Final[dict[str, Any]] = {
    "group_by": ["alertname"],
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "4h",
}
RECEIVER_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")
# Credential-bearing fields of Alertmanager's schema (its Secret and SecretURL types, and the
# URLs that carry tokens in their paths): webhook and API URLs, passwords, tokens, keys.
_EXACT = frozenset(
    {"key", "token", "credentials", "password", "token_id", "bearer_token", "secrets"}
)
_SUFFIXES = ("url", "_key", "password", "secret", "_token", "credentials")


def is_credential(key: str) -> bool:
    """Whether a field of that name holds a credential (masked in every response)."""
    return key in _EXACT or key.endswith(_SUFFIXES)


def _children(value: Any) -> Iterator[tuple[str | int, Any]]:
    if isinstance(value, dict):
        yield from value.items()
    elif isinstance(value, list):
        yield from enumerate(value)


def mask(value: Any) -> Any:
    """A copy of `value` with every credential string replaced by `"<secret>"`."""
    if isinstance(value, dict):
        return {k: _masked(v) if is_credential(k) else mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(item) for item in value]
    return value


def _masked(value: Any) -> Any:
    """A credential field's value masked: a string, or each string of a list (an HTTP
    header's `secrets`)."""
    if isinstance(value, str):
        return SECRET
    if isinstance(value, list):
        return [SECRET if isinstance(item, str) else mask(item) for item in value]
    return mask(value)


def restore(given: Any, stored: Any) -> Any:
    """`given` with each `"<secret>"` replaced by the value stored at the same place; one with
    nothing stored behind it is dropped (never stored)."""
    if isinstance(given, dict):
        out: dict[str, Any] = {}
        for key, value in given.items():
            behind = stored.get(key) if isinstance(stored, dict) else None
            if value == SECRET:
                if isinstance(behind, str) and behind != SECRET:
                    out[key] = behind
                continue
            out[key] = restore(value, behind)
        return out
    if isinstance(given, list):
        kept = []
        for index, value in enumerate(given):
            behind = stored[index] if isinstance(stored, list) and index < len(stored) else None
            if value == SECRET:
                if isinstance(behind, str) and behind != SECRET:
                    kept.append(behind)
                continue
            kept.append(restore(value, behind))
        return kept
    return given


def file_reference(value: Any, where: str) -> str | None:
    """The first `*_file` field (a path Alertmanager would read on Kupe's host), as a field
    path under `where`; tenants give values, never files."""
    pending: list[tuple[Any, str]] = [(value, where)]
    while pending:
        item, path = pending.pop()
        for key, child in _children(item):
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (key == "files" or key.endswith(("_file", "_files"))):
                return here
            pending.append((child, here))
    return None


_UNWRITABLE = re.compile("[\x00\ud800-\udfff]")


def unwritable_text(value: Any, where: str) -> str | None:
    """The field path of the first key or string holding NUL or an unpaired surrogate (no
    configuration file can carry them), or None."""
    pending: list[tuple[Any, str]] = [(value, where)]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str) and _UNWRITABLE.search(item):
            return path or "body"
        for key, child in _children(item):
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _UNWRITABLE.search(key):
                return path or "body"
            pending.append((child, here))
    return None


def _private_host(host: str) -> bool:
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return not address.is_global or address.is_multicast


def private_url(value: Any, where: str) -> str | None:
    """The field path of the first URL-valued field pointing at a loopback, private,
    link-local or unspecified address (an IP literal or `localhost`), or None."""
    pending: list[tuple[Any, str]] = [(value, where)]
    while pending:
        item, path = pending.pop()
        for key, child in _children(item):
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and key.endswith("url") and isinstance(child, str):
                try:
                    host = urlsplit(child).hostname
                except ValueError:
                    continue
                if host and _private_host(host):
                    return here
            else:
                pending.append((child, here))
    return None


def credentials(value: Any) -> set[str]:
    """Every credential string in `value` (and the secret parts of URL-shaped ones), to keep
    them out of Alertmanager's messages."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        for key, child in _children(item):
            secret_strings = (
                [child]
                if isinstance(child, str)
                else [v for v in child if isinstance(v, str)]
                if isinstance(child, list)
                else []
            )
            if isinstance(key, str) and is_credential(key) and secret_strings:
                for text in secret_strings:
                    found.add(text)
                    found.update(_url_parts(text))
            else:
                pending.append(child)
    return {text for text in found if len(text) >= 3 and text != SECRET}


def _url_parts(text: str) -> set[str]:
    try:
        parts = urlsplit(text)
    except ValueError:
        return set()
    return {part for part in (parts.password, parts.username, parts.query, parts.path) if part}


def sanitise(message: str, secrets: set[str]) -> str:
    """`message` with each of `secrets` replaced by `"<secret>"`, longest first."""
    for secret in sorted(secrets, key=len, reverse=True):
        message = message.replace(secret, SECRET)
    return message


def route_receivers(routes: list[Any]) -> Iterator[tuple[str, str]]:
    """(field path, receiver name) of every route and nested route naming a receiver."""
    pending: list[tuple[Any, str]] = [(route, f"items.{i}") for i, route in enumerate(routes)]
    while pending:
        route, path = pending.pop(0)
        if not isinstance(route, dict):
            continue
        receiver = route.get("receiver")
        if isinstance(receiver, str):
            yield f"{path}.receiver", receiver
        children = route.get("routes")
        if isinstance(children, list):
            pending.extend((child, f"{path}.routes.{i}") for i, child in enumerate(children))


def effective(
    global_: dict[str, Any], routes: list[Any], receivers: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The tenant's effective configuration, as Alertmanager reads it (credentials in the
    clear: mask it before it leaves Kupe)."""
    config: dict[str, Any] = {}
    if global_:
        config["global"] = global_
    config["route"] = {"receiver": DEFAULT_RECEIVER, **ROOT_ROUTE}
    if routes:
        config["route"]["routes"] = routes
    config["receivers"] = [{"name": DEFAULT_RECEIVER}] + [
        {"name": name, **body} for name, body in sorted(receivers.items())
    ]
    return config
