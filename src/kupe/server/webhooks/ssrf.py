"""Server-side request forgery checks for webhook URLs: http(s) only, and no address inside
the installation's own networks (loopback, link-local with the cloud metadata address,
private, unique-local, and the like), unless the operator allows them. A URL is checked when
it is set, and its resolved addresses again at every delivery, which then connects only to an
address that passed (a name that resolves elsewhere between check and connect gains nothing).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048
METADATA = ipaddress.ip_address("169.254.169.254")


class UnsafeUrl(ValueError):
    """A URL Kupe will not send to; the message says why, without echoing secrets."""


def check_url_shape(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of an acceptable URL; UnsafeUrl otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"url must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("url is not a valid URL") from None
    if parts.scheme not in ("https", "http"):
        raise UnsafeUrl("url must be an https:// or http:// URL")
    if not parts.hostname:
        raise UnsafeUrl("url must name a host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("url must not carry credentials")
    if any(ch.isspace() or ord(ch) < 0x21 for ch in url):
        raise UnsafeUrl("url must not contain spaces or control characters")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def address_problem(address: IPAddress) -> str | None:
    """Why `address` is refused, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address == METADATA:
        return "the cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a non-public address"
    return None


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (a literal address: itself)."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeUrl(f"url host {host!r} does not resolve") from None
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise UnsafeUrl(f"url host {host!r} does not resolve")
    return found


def check_addresses(addresses: list[IPAddress], *, allow_private: bool) -> IPAddress:
    """The address to connect to: the first, once every one passed; UnsafeUrl otherwise (a
    name with one internal address among public ones is refused whole)."""
    if not allow_private:
        for address in addresses:
            problem = address_problem(address)
            if problem is not None:
                raise UnsafeUrl(f"url must not point to {problem}")
    return addresses[0]


async def safe_address(url: str, *, allow_private: bool) -> IPAddress:
    """Check `url` and its resolved addresses; the address a delivery should connect to."""
    _scheme, host, port = check_url_shape(url)
    literal = literal_address(host)
    if literal is not None:
        return check_addresses([literal], allow_private=allow_private)
    if not allow_private and host.rstrip(".").lower() in ("localhost", "metadata.google.internal"):
        raise UnsafeUrl("url must not point to the local host or the metadata service")
    return check_addresses(await resolve(host, port), allow_private=allow_private)
