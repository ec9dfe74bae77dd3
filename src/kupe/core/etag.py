"""ETags are a resourceVersion in double quotes; If-Match takes quoted, bare or `*`.

Any other well-formed entity-tag (RFC 9110 §8.8.3: `"opaque"` or `W/"opaque"`) is valid and
simply never matches a Kupe object: 200 for If-None-Match, 412 for If-Match.
"""

from __future__ import annotations

import re

from kupe.core.errors import BadRequest, PreconditionFailed

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text; Kupe also
# takes a bare resourceVersion.
_ELEMENT = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"|[0-9]{1,19}'
_LIST = re.compile(rf"\A(?:{_ELEMENT})(?:[ \t]*,[ \t]*(?:{_ELEMENT}))*\Z")
_TAG = re.compile(r'(?:W/)?"([\x21\x23-\x7e\x80-\xff]*)"|([0-9]{1,19})')
_VERSION = re.compile(r"\A[0-9]{1,19}\Z")


def etag(resource_version: int | str) -> str:
    return f'"{resource_version}"'


def parse_etags(header: str, name: str = "If-Match") -> set[str] | None:
    """The resourceVersions a header names, or None for `*`; 400 on bad syntax.

    Well-formed opaque tags name no version, so they contribute nothing to the set.
    """
    header = header.strip()
    if header == "*":
        return None
    if _LIST.match(header) is None:
        raise BadRequest(f'{name} must be an ETag such as "294810" (or *)', code="INVALID_HEADER")
    versions: set[str] = set()
    for match in _TAG.finditer(header):
        tag = match.group(1) if match.group(1) is not None else match.group(2)
        if _VERSION.match(tag):
            versions.add(str(int(tag)))
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
