"""Idempotency-Key for every POST: a repeat of an earlier key (same tenant, within 24 h) with the
same request replays the original response; with a different request it is refused (409).

The database never holds a response in the clear (one may carry a new API key, shown once):
it is sealed with AES-GCM under a key derived from the Idempotency-Key itself, which the
database does not hold either (only its SHA-256). Only a client presenting the key again
can have the response back.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.errors import IdempotencyKeyReused
from kupe.server.db.models import IdempotencyRecord
from kupe.server.db.repositories.idempotency import IdempotencyRepository

IDEMPOTENCY_WINDOW = timedelta(hours=24)
_NONCE = 12


@dataclass(frozen=True)
class StoredResponse:
    """A response as it was (or will be) sent: replayed verbatim for a repeated key."""

    status: int
    body: str
    etag: str | None = None
    location: str | None = None


def request_digest(method: str, route: str, body: str) -> str:
    """What identifies a request for its key: the same key on another route, or with another
    body, is a different request."""
    return hashlib.sha256("\n".join((method, route, body)).encode()).hexdigest()


class Idempotency:
    """Looks up and records the response of one keyed request, in the request's transaction."""

    def __init__(self, session: AsyncSession, tenant_id: str, key: str, digest: str) -> None:
        self.repo = IdempotencyRepository(session, tenant_id)
        self.tenant_id = tenant_id
        self.lookup = hashlib.sha256(f"kupe-idempotency:{key}".encode()).hexdigest()
        self.digest = digest
        self._seal = AESGCM(
            HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=tenant_id.encode(),
                info=b"kupe idempotent response",
            ).derive(key.encode())
        )

    async def replay(self, now: datetime) -> StoredResponse | None:
        """The original response to this key, if there is one; 409 if it answered another
        request. An expired record is forgotten, so the key can be used afresh."""
        earlier = await self.repo.get(self.lookup, newer_than=now - IDEMPOTENCY_WINDOW)
        if earlier is None:
            await self.repo.forget_older_than(self.lookup, now - IDEMPOTENCY_WINDOW)
            return None
        if earlier.request_hash != self.digest:
            raise IdempotencyKeyReused()
        try:
            sealed = bytes.fromhex(earlier.response_body)
            opened = self._seal.decrypt(sealed[:_NONCE], sealed[_NONCE:], self.digest.encode())
        except (ValueError, InvalidTag):
            # Not sealed under this key (a record older than sealing): treat as a reuse.
            raise IdempotencyKeyReused() from None
        return StoredResponse(**json.loads(opened))

    def record(self, response: StoredResponse, now: datetime) -> None:
        """Remember `response` for repeats; committed (or not) with the request's changes."""
        nonce = os.urandom(_NONCE)
        plain = json.dumps(asdict(response)).encode()
        sealed = nonce + self._seal.encrypt(nonce, plain, self.digest.encode())
        self.repo.add(
            IdempotencyRecord(
                tenant_id=self.tenant_id,
                key=self.lookup,
                request_hash=self.digest,
                status_code=response.status,
                response_body=sealed.hex(),
                etag=response.etag,
                location=response.location,
                created_at=now,
            )
        )
