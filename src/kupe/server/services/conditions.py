"""Kubernetes-style conditions: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kupe.core.clock import rfc3339


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """Return `conditions` with `type_` set; status None means Unknown."""
    text = "Unknown" if status is None else ("True" if status else "False")
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions:
        if cond["type"] != type_:
            out.append(cond)
            continue
        found = True
        changed_at = cond["lastTransitionTime"] if cond["status"] == text else rfc3339(now)
        out.append(
            {
                "type": type_,
                "status": text,
                "reason": reason,
                "message": message,
                "lastTransitionTime": changed_at,
            }
        )
    if not found:
        out.append(
            {
                "type": type_,
                "status": text,
                "reason": reason,
                "message": message,
                "lastTransitionTime": rfc3339(now),
            }
        )
    return out


def condition_status(conditions: list[dict[str, Any]], type_: str) -> str | None:
    for cond in conditions:
        if cond["type"] == type_:
            return str(cond["status"])
    return None
