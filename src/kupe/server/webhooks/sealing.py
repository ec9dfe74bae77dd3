"""Webhook signing secrets at rest: sealed with AES-GCM under a key derived from the
installation's sealing key (never stored in the database), bound to the hook's tenant and id,
so a sealed value copied onto another row does not open."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_FILE = "webhook-sealing-key"
MIN_KEY_CHARS = 32
_NONCE = 12


class SealingError(Exception):
    """A sealed secret does not open under this installation's key."""


def load_sealing_key(configured: str | None, data_dir: Path) -> str:
    """The configured key, else the one in `<data dir>/webhook-sealing-key` (0600), made on
    first use. Replicas on several machines must be given the same key in their settings."""
    if configured is not None:
        if len(configured) < MIN_KEY_CHARS:
            raise ValueError(f"KUPE_WEBHOOKS__SEALING_KEY needs {MIN_KEY_CHARS}+ characters")
        return configured
    path = data_dir / KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process on this data dir made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


class SecretSealer:
    """Seals and opens webhook secrets under one installation key."""

    def __init__(self, key: str) -> None:
        self._aead = AESGCM(
            HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"kupe webhook secret"
            ).derive(key.encode())
        )

    def seal(self, tenant_id: str, webhook_id: str, secret: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, secret.encode(), _bound(tenant_id, webhook_id))
        return (nonce + sealed).hex()

    def open(self, tenant_id: str, webhook_id: str, sealed: str) -> str:
        try:
            raw = bytes.fromhex(sealed)
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _bound(tenant_id, webhook_id))
        except (ValueError, InvalidTag):
            raise SealingError("the webhook secret does not open under this key") from None
        return plain.decode()


def _bound(tenant_id: str, webhook_id: str) -> bytes:
    return f"{tenant_id}/{webhook_id}".encode()
