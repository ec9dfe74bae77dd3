"""Kubernetes-style conditions: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, TypedDict

from kupe.core.clock import rfc3339

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(TypedDict):
    """One condition as stored and as sent on the wire."""

    type: str
    status: ConditionStatus
    reason: str
    message: str
    lastTransitionTime: str


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    now: datetime,
) -> list[Condition]:
    """Return `conditions` with `type_` set; status None means Unknown."""
    text: ConditionStatus = "Unknown" if status is None else ("True" if status else "False")
    out: list[Condition] = []
    found = False
    for cond in conditions:
        if cond["type"] != type_:
            out.append(cond)
            continue
        found = True
        changed_at = cond["lastTransitionTime"] if cond["status"] == text else rfc3339(now)
        out.append(_condition(type_, text, reason, message, changed_at))
    if not found:
        out.append(_condition(type_, text, reason, message, rfc3339(now)))
    return out


def _condition(
    type_: str, status: ConditionStatus, reason: str, message: str, changed_at: str
) -> Condition:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": changed_at,
    }


def condition_status(conditions: Sequence[Condition], type_: str) -> str | None:
    for cond in conditions:
        if cond["type"] == type_:
            return cond["status"]
    return None
