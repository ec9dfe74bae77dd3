"""Webhook signing secrets at rest: sealed by the server's one sealer (`server/sealing.py`,
AES-GCM), bound to the hook's tenant and id, so a sealed value copied onto another row does not
open. The key is the server key (`<data dir>/server.key`, shared with tenants' alerting
credentials) unless KUPE_WEBHOOKS__SEALING_KEY names one of the webhooks' own."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kupe.server import sealing

MIN_KEY_CHARS = 32


class SealingError(Exception):
    """A sealed secret does not open under this installation's key."""


class SecretSealer:
    """Seals and opens webhook secrets under one installation key."""

    def __init__(self, sealer: sealing.Sealer) -> None:
        self._sealer = sealer

    @classmethod
    def from_key(cls, key: str) -> SecretSealer:
        """A sealer keyed by a configured passphrase of 32+ characters (derived with HKDF)."""
        if len(key) < MIN_KEY_CHARS:
            raise ValueError(f"KUPE_WEBHOOKS__SEALING_KEY needs {MIN_KEY_CHARS}+ characters")
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"kupe webhook secret"
        ).derive(key.encode())
        return cls(sealing.Sealer(derived))

    def seal(self, tenant_id: str, webhook_id: str, secret: str) -> str:
        return self._sealer.seal(secret, _bound(tenant_id, webhook_id))

    def open(self, tenant_id: str, webhook_id: str, sealed: str) -> str:
        try:
            return self._sealer.open(sealed, _bound(tenant_id, webhook_id))
        except sealing.SealingError:
            raise SealingError("the webhook secret does not open under this key") from None


def _bound(tenant_id: str, webhook_id: str) -> str:
    return f"webhook/{tenant_id}/{webhook_id}"
