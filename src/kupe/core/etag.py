"""ETags are a resourceVersion in double quotes; If-Match takes quoted, bare or `*`."""

from __future__ import annotations

import re

from kupe.core.errors import BadRequest, PreconditionFailed

_TAG = re.compile(r'\A(?:W/)?"?([0-9]{1,19})"?\Z')


def etag(resource_version: int | str) -> str:
    return f'"{resource_version}"'


def parse_etags(header: str, name: str = "If-Match") -> set[str] | None:
    """The resourceVersions a header lists, or None for `*`; 400 on bad syntax."""
    header = header.strip()
    if header == "*":
        return None
    versions: set[str] = set()
    for part in header.split(","):
        match = _TAG.match(part.strip())
        if match is None:
            raise BadRequest(
                f'{name} must be an ETag such as "294810" (or *)', code="INVALID_HEADER"
            )
        versions.add(str(int(match.group(1))))
    return versions


def check_if_match(header: str | None, resource_version: int) -> None:
    """Raise 412 when If-Match is given and does not name the current version."""
    if header is None:
        return
    wanted = parse_etags(header)
    if wanted is not None and str(resource_version) not in wanted:
        raise PreconditionFailed()


def none_match(header: str | None, resource_version: int) -> bool:
    """True when If-None-Match names the current version (answer 304)."""
    if header is None:
        return False
    wanted = parse_etags(header, "If-None-Match")
    return wanted is None or str(resource_version) in wanted
