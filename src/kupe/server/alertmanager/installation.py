"""One Alertmanager configuration for a whole installation (the embedded backend): the root
route has a child route per tenant matching `tenant="<name>"` (so a tenant's receivers only
ever see its own alerts), with Kupe's root-route defaults and the tenant's routes below it;
receivers are namespaced `<tenant>/<name>`.

Alertmanager has one `global` section per configuration, so a tenant's global values are
written into its own receivers' integrations instead (where they leave a field unset), which
is what Alertmanager itself does with global defaults. `resolve_timeout` is the
installation's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any, Final

from kupe.server.alertmanager.config import DEFAULT_RECEIVER, ROOT_ROUTE

INSTALLATION_RECEIVER: Final = "kupe-installation-default"
# global field -> (integration list, field in each integration)
_GLOBAL_DEFAULTS: Final[dict[str, tuple[str, str]]] = {
    "smtp_from": ("email_configs", "from"),
    "smtp_smarthost": ("email_configs", "smarthost"),
    "smtp_hello": ("email_configs", "hello"),
    "smtp_auth_username": ("email_configs", "auth_username"),
    "smtp_auth_password": ("email_configs", "auth_password"),
    "smtp_auth_secret": ("email_configs", "auth_secret"),
    "smtp_auth_identity": ("email_configs", "auth_identity"),
    "smtp_require_tls": ("email_configs", "require_tls"),
    "smtp_tls_config": ("email_configs", "tls_config"),
    "slack_api_url": ("slack_configs", "api_url"),
    "pagerduty_url": ("pagerduty_configs", "url"),
    "opsgenie_api_key": ("opsgenie_configs", "api_key"),
    "opsgenie_api_url": ("opsgenie_configs", "api_url"),
    "victorops_api_key": ("victorops_configs", "api_key"),
    "victorops_api_url": ("victorops_configs", "api_url"),
    "wechat_api_url": ("wechat_configs", "api_url"),
    "wechat_api_secret": ("wechat_configs", "api_secret"),
    "wechat_api_corp_id": ("wechat_configs", "corp_id"),
    "telegram_api_url": ("telegram_configs", "api_url"),
    "webex_api_url": ("webex_configs", "api_url"),
    "jira_api_url": ("jira_configs", "api_url"),
    "rocketchat_api_url": ("rocketchat_configs", "api_url"),
    "rocketchat_token": ("rocketchat_configs", "token"),
    "rocketchat_token_id": ("rocketchat_configs", "token_id"),
}


def namespaced(tenant: str, receiver: str) -> str:
    return f"{tenant}/{receiver}"


def _with_globals(body: dict[str, Any], global_: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    http_config = global_.get("http_config")
    for key, integrations in out.items():
        if not (key.endswith("_configs") and isinstance(integrations, list)):
            continue
        for integration in integrations:
            if not isinstance(integration, dict):
                continue
            for field, (kind, target) in _GLOBAL_DEFAULTS.items():
                if kind == key and field in global_ and target not in integration:
                    integration[target] = copy.deepcopy(global_[field])
            # Email is the one integration without an HTTP client.
            if (
                http_config is not None
                and key != "email_configs"
                and "http_config" not in integration
            ):
                integration["http_config"] = copy.deepcopy(http_config)
    return out


def _renamed(route: Any, tenant: str) -> Any:
    if not isinstance(route, dict):
        return route
    out = dict(route)
    if isinstance(out.get("receiver"), str):
        out["receiver"] = namespaced(tenant, out["receiver"])
    if isinstance(out.get("routes"), list):
        out["routes"] = [_renamed(child, tenant) for child in out["routes"]]
    return out


def tenant_part(tenant: str, effective: dict[str, Any]) -> dict[str, Any]:
    """A tenant's route and receivers in the installation's configuration, from its
    effective configuration (see config.effective)."""
    global_ = effective.get("global") or {}
    root = effective["route"]
    route: dict[str, Any] = {
        "receiver": namespaced(tenant, DEFAULT_RECEIVER),
        "matchers": [f"tenant={json.dumps(tenant)}"],
        **ROOT_ROUTE,
    }
    if root.get("routes"):
        route["routes"] = [_renamed(child, tenant) for child in root["routes"]]
    receivers = [
        {**_with_globals(body, global_), "name": namespaced(tenant, body["name"])}
        for body in effective["receivers"]
    ]
    return {"route": route, "receivers": receivers}


def installation_config(parts: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The whole configuration from each tenant's part, ordered by tenant name."""
    ordered = sorted(parts, key=lambda part: part[0])
    return {
        "route": {
            "receiver": INSTALLATION_RECEIVER,
            "group_by": ["alertname"],
            "routes": [part["route"] for _tenant, part in ordered],
        },
        "receivers": [
            {"name": INSTALLATION_RECEIVER},
            *(receiver for _tenant, part in ordered for receiver in part["receivers"]),
        ],
    }
