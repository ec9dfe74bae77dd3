"""Opaque `continue` tokens for name-ordered lists."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from kupe.core.errors import ValidationFailed

T = TypeVar("T")


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


def page_query(continue_token: str | None, limit: int | None) -> tuple[str | None, int | None]:
    """What to fetch for a page: the key to start after, and one row more than the page."""
    after = decode_continue(continue_token) if continue_token else None
    return after, (limit + 1 if limit else None)


def cut_page(
    rows: Sequence[T], limit: int | None, key: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """Trim a fetch of `limit + 1` rows to the page, with the token for the next page if any."""
    if limit and len(rows) > limit:
        page = list(rows[:limit])
        return page, encode_continue(key(page[-1]))
    return list(rows), None
