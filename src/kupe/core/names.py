"""Name rules shared by server, SDK and CLI."""

from __future__ import annotations

import re

DNS_LABEL = re.compile(r"\A[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
NAME_MIN, NAME_MAX = 2, 63


def name_problem(value: str, what: str = "name") -> str | None:
    """Why `value` is not a valid DNS-label name, or None when it is."""
    if not NAME_MIN <= len(value) <= NAME_MAX:
        return f"{what} must be {NAME_MIN} to {NAME_MAX} characters long"
    if not DNS_LABEL.match(value):
        return (
            f"{what} must consist of lower-case letters, digits and '-', "
            "and start and end with a letter or digit"
        )
    return None


def is_valid_name(value: str) -> bool:
    """True when `value` is a valid cluster, secret or tenant name."""
    return name_problem(value) is None
