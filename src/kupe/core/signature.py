"""Webhook signatures (API §11): `Kupe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>">`, as Stripe signs its deliveries. The server signs with it and the SDK
verifies with it, so both read the one definition."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Kupe-Signature"
EVENT_ID_HEADER = "Kupe-Event-Id"
SCHEME = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The `Kupe-Signature` value of a delivery of `body` signed at `timestamp`."""
    return f"t={timestamp},{SCHEME}={signature(secret, timestamp, body)}"


def parse_signature_header(value: str) -> tuple[int, list[str]]:
    """The timestamp and every v1 signature of a header value; ValueError if malformed."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            raise ValueError("malformed signature header")
        if key == "t":
            if not item.isdigit() or timestamp is not None:
                raise ValueError("malformed signature timestamp")
            timestamp = int(item)
        elif key == SCHEME:
            signatures.append(item)
    if timestamp is None or not signatures:
        raise ValueError("signature header needs t= and v1=")
    return timestamp, signatures
