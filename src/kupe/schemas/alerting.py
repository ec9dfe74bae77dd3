"""Alertmanager configuration wire models (API §9): receivers and global are objects in
Alertmanager's own schema (snake_case, checked by Alertmanager's loader, not here); routes
are a list of Alertmanager routes."""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue

from kupe.schemas.common import ResponseModel, WireModel

SECRET = "<secret>"  # noqa: S105 - the masking sentinel, not a credential
# Alertmanager's own objects: a receiver (`webhook_configs`, `slack_configs`, ...) or the
# global section (`smtp_smarthost`, `slack_api_url`, ...).
AlertmanagerObject = dict[str, JsonValue]


class RouteList(WireModel):
    """The ordered child routes of the tenant's root route; null or absent clears them."""

    items: list[dict[str, JsonValue]] | None = Field(
        None,
        description="Alertmanager routes (receiver, matchers, group_by, continue, routes, ...).",
        examples=[[{"receiver": "oncall", "matchers": ['severity="critical"']}]],
    )


class ReceiverList(ResponseModel):
    """The tenant's receivers, credentials masked."""

    items: list[dict[str, Any]]


class EffectiveConfig(ResponseModel):
    """The tenant's effective configuration as Kupe renders it, credentials masked."""

    global_: dict[str, Any] | None = Field(None, alias="global")
    route: dict[str, Any]
    receivers: list[dict[str, Any]]
