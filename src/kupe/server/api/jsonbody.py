"""Checks on a JSON request body before anything builds Python objects from it.

Nesting is measured on the raw bytes, so no body can exhaust the interpreter's recursion
limit further in; then a strict parse refuses what is not JSON (NaN, Infinity, 1e999).
"""

from __future__ import annotations

import json
import re

import orjson

from kupe.core.errors import KupeError, MalformedJson, ValidationFailed
from kupe.schemas.common import MAX_NESTING

# A string (possessive, so an unterminated one costs one pass), optionally a key, or a bracket.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*+"(?:[ \t\r\n]*:)?|[\[\]{}]', re.DOTALL)
_NON_FINITE = re.compile(r"-?(?:NaN|Infinity)")


def _key(token: bytes) -> str | None:
    try:
        key = json.loads(token[: token.rindex(b'"') + 1])
    except (ValueError, UnicodeDecodeError):
        return None
    return key if isinstance(key, str) else None


def nesting_error(body: bytes, limit: int = MAX_NESTING) -> KupeError | None:
    """400 naming the top-level field whose value nests deeper than `limit` levels."""
    depth = 0
    field: str | None = None
    for match in _TOKEN.finditer(body):
        token = match.group()
        first = token[0]
        if first == ord('"'):
            if depth == 1 and token.endswith(b":"):
                field = _key(token)
        elif first in b"[{":
            depth += 1
            # The body itself is one level; each top-level field may nest `limit` more.
            if depth > limit + 1:
                where = field or "request body"
                return ValidationFailed(
                    f"{where} must not nest deeper than {limit} levels", field=field
                )
        else:
            depth -= 1
            if depth == 1:
                field = None
    return None


def strictness_error(body: bytes) -> KupeError | None:
    """400 for a body that is not strict JSON: bad UTF-8, NaN, Infinity, or 1e999."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return MalformedJson("Request body is not valid UTF-8")
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if _NON_FINITE.match(text, exc.pos) or "infinity" in exc.msg:
            return MalformedJson(
                f"Numbers must be finite: NaN, Infinity and numbers beyond a double's range "
                f"are not JSON (at character {exc.pos})"
            )
        return MalformedJson(f"Request body is not valid JSON: {exc.msg} (at character {exc.pos})")
    return None


def body_error(body: bytes) -> KupeError | None:
    """The first problem with a JSON request body, or None when FastAPI may parse it."""
    if not body.strip():
        return None
    return nesting_error(body) or strictness_error(body)
