"""Opaque `continue` tokens for name-ordered lists."""

from __future__ import annotations

import base64
import binascii
import json

from kupe.core.errors import ValidationFailed


def encode_continue(last_name: str) -> str:
    raw = json.dumps({"after": last_name}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> str:
    """The name after which the next page starts; 400 for anything that is not our token."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        after = data["after"]
        if not isinstance(after, str) or len(after) > 253:
            raise ValueError
        return after
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise ValidationFailed("continue token is not valid", field="continue") from None
