"""The cluster's `alerts` document: its `managedRules` object overrides the platform's managed
alerting rules for that cluster (all disabled by default); the rest of the document stays
free-form, as the hosted API has it.

`{"managedRules": {"podCrashLooping": {"enabled": true, "for": "10m", "severity": "critical"}}}`
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from pydantic_core import PydanticCustomError

MANAGED_RULES_FIELD: Final = "managedRules"
SEVERITIES: Final = ("info", "warning", "critical")
_DURATION = re.compile(r"\A(?:[0-9]+(?:ms|s|m|h|d|w|y))+\Z")
_FIELDS: Final = ("enabled", "for", "severity")


@dataclass(frozen=True)
class ManagedRule:
    """One rule of the platform's catalogue: the alert it raises and its defaults."""

    alert: str
    summary: str
    severity: str = "warning"
    for_: str = "15m"


# The hosted list, by the name a cluster's `alerts.managedRules` uses.
MANAGED_RULES: Final[dict[str, ManagedRule]] = {
    "podCrashLooping": ManagedRule("KubePodCrashLooping", "A pod is restarting repeatedly"),
    "podNotReady": ManagedRule("KubePodNotReady", "A pod has not been ready for a while"),
    "containerWaiting": ManagedRule("KubeContainerWaiting", "A container is stuck waiting"),
    "deploymentReplicasMismatch": ManagedRule(
        "KubeDeploymentReplicasMismatch", "A deployment has not the replicas it asks for"
    ),
    "rolloutStuck": ManagedRule("KubeDeploymentRolloutStuck", "A rollout is not progressing"),
    "statefulsetReplicasMismatch": ManagedRule(
        "KubeStatefulSetReplicasMismatch", "A statefulset has not the replicas it asks for"
    ),
    "jobFailed": ManagedRule("KubeJobFailed", "A job failed", for_="0m"),
    "cpuThrottlingHigh": ManagedRule(
        "CPUThrottlingHigh", "Containers are throttled on CPU", severity="info"
    ),
    "quotaAlmostFull": ManagedRule(
        "KubeQuotaAlmostFull", "A resource quota is almost used up", severity="info"
    ),
    "quotaExceeded": ManagedRule("KubeQuotaExceeded", "A resource quota is exceeded"),
    "persistentVolumeFillingUp": ManagedRule(
        "KubePersistentVolumeFillingUp", "A persistent volume is filling up", severity="critical"
    ),
}


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("kupe_invalid", message)


def check_managed_rules(alerts: dict[str, Any]) -> None:
    """400 for an unknown rule or setting in `alerts.managedRules` (null entries and fields
    are allowed: in a merge patch they remove an override)."""
    rules = alerts.get(MANAGED_RULES_FIELD)
    if rules is None:
        return
    where = f"alerts.{MANAGED_RULES_FIELD}"
    if not isinstance(rules, dict):
        raise _invalid(f"{where} must be an object of rule overrides")
    for name, override in rules.items():
        if name not in MANAGED_RULES:
            raise _invalid(
                f"{where}.{name} is not a managed rule; known: {', '.join(MANAGED_RULES)}"
            )
        if override is None:
            continue
        if not isinstance(override, dict):
            raise _invalid(f'{where}.{name} must be an object such as {{"enabled": true}}')
        for key, value in override.items():
            here = f"{where}.{name}.{key}"
            if key not in _FIELDS:
                raise _invalid(f"{here} is not a setting of a rule; known: enabled, for, severity")
            if value is None:
                continue
            if key == "enabled" and not isinstance(value, bool):
                raise _invalid(f"{here} must be true or false")
            if key == "for" and not (isinstance(value, str) and _DURATION.match(value)):
                raise _invalid(f"{here} must be a duration such as 15m")
            if key == "severity" and value not in SEVERITIES:
                raise _invalid(f"{here} must be one of {', '.join(SEVERITIES)}")


@dataclass(frozen=True)
class EnabledRule:
    """A managed rule switched on for a cluster, with its effective settings."""

    name: str
    alert: str
    summary: str
    severity: str
    for_: str


def enabled_rules(alerts: dict[str, Any] | None) -> list[EnabledRule]:
    """The managed rules `alerts` switches on, in catalogue order."""
    rules = (alerts or {}).get(MANAGED_RULES_FIELD) or {}
    found = []
    for name, rule in MANAGED_RULES.items():
        override = rules.get(name) or {}
        if override.get("enabled") is not True:
            continue
        found.append(
            EnabledRule(
                name,
                rule.alert,
                rule.summary,
                override.get("severity") or rule.severity,
                override.get("for") or rule.for_,
            )
        )
    return found
