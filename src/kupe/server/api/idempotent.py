"""Every POST honours Idempotency-Key (API §4, "Idempotency"): the create runs in a unit of
work that first looks for the key's earlier response, and records the new one with the
changes it made, in the same transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from kupe.core.errors import AlreadyExists
from kupe.server.api.responses import json_response
from kupe.server.api.scopes import RequestScopes
from kupe.server.services import audit
from kupe.server.services.console_credential import Credential
from kupe.server.services.idempotency import Idempotency, StoredResponse, request_digest
from kupe.server.services.unit import UnitOfWork

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Repeat a create safely: the same key and body within 24 h returns the "
        "original response; a different body answers 409 IDEMPOTENCY_KEY_REUSED.",
    ),
]
Create = Callable[[UnitOfWork], Awaitable[StoredResponse]]


async def idempotent_post(
    scopes: RequestScopes,
    authorization: Credential,
    tenant: str,
    *,
    key: str | None,
    route: str,
    body: BaseModel,
    create: Create,
    headers: dict[str, str] | None = None,
) -> Response:
    """Run `create` once per Idempotency-Key and answer its (stored or new) response."""
    digest = request_digest("POST", route, body.model_dump_json(by_alias=True))
    for attempt in range(2):
        try:
            stored = await _once(scopes, authorization, tenant, key, digest, create)
            break
        except AlreadyExists:
            # A concurrent request with the same key won the race: replay its response.
            if key is None or attempt == 1:
                raise
    extra = dict(headers or {})
    if stored.location:
        extra["Location"] = stored.location
    if stored.etag:
        extra["ETag"] = stored.etag
    return json_response(stored.body, status=stored.status, headers=extra)


async def _once(
    scopes: RequestScopes,
    authorization: Credential,
    tenant: str,
    key: str | None,
    digest: str,
    create: Create,
) -> StoredResponse:
    async with scopes.working(authorization, tenant) as unit:
        if key is None:
            response = await create(unit)
            audit.created_at(response.location)  # before the audit entry is staged
            return response
        session = await unit.session()
        idempotency = Idempotency(session, unit.principal.tenant_id, key, digest)
        earlier = await idempotency.replay(scopes.clock.now())
        if earlier is not None:
            audit.created_at(earlier.location)
            return earlier
        response = await create(unit)
        audit.created_at(response.location)
        idempotency.record(response, scopes.clock.now())
        try:
            await session.flush()
        except IntegrityError:
            raise AlreadyExists("Resource already exists") from None
        return response
