"""The server's own key for values it must read back (tenants' alerting credentials): AES-GCM
under a 256-bit key from KUPE_ALERTING__SECRET_KEY, else from `<data dir>/server.key` (0600),
made on first start. The database holds only sealed values; each is bound to where it belongs
(the associated data), so a sealed value copied to another row or tenant does not open.

Replicas sharing one database must share the key: set KUPE_ALERTING__SECRET_KEY on each.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE: Final = 12
_PREFIX: Final = "v1:"
KEY_FILE: Final = "server.key"


class SealingError(Exception):
    """A sealed value does not open under this key (another key, or tampered with)."""


def parse_key(text: str) -> bytes:
    """A key given as 32 bytes in base64 (e.g. `openssl rand -base64 32`)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be 32 bytes in base64 (openssl rand -base64 32)") from None
    if len(key) != 32:
        raise ValueError("must be 32 bytes in base64 (openssl rand -base64 32)")
    return key


def load_or_create_key(data_dir: Path) -> bytes:
    """The key in `<data_dir>/server.key`, made (0600, in a 0700 directory) if absent."""
    path = data_dir / KEY_FILE
    try:
        return parse_key(path.read_text())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = AESGCM.generate_key(bit_length=256)
    # Written whole under a name of this process's own, then linked into place (which fails if
    # the key exists): a replica starting meanwhile finds no key or a whole one, never a
    # half-written file.
    partial = path.with_name(f".{KEY_FILE}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode() + "\n")
    try:
        os.link(partial, path)
    except FileExistsError:
        return parse_key(path.read_text())  # another process made it first: use theirs
    finally:
        partial.unlink(missing_ok=True)
    return key


class Sealer:
    """Seals and opens text under the server key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plain: str, context: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, plain.encode(), context.encode())
        return _PREFIX + base64.b64encode(sealed).decode()

    def open(self, sealed: str, context: str) -> str:
        if not sealed.startswith(_PREFIX):
            raise SealingError("not a sealed value")
        try:
            raw = base64.b64decode(sealed[len(_PREFIX) :], validate=True)
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
        except (binascii.Error, ValueError, InvalidTag):
            raise SealingError("the sealed value does not open under this server key") from None
        return plain.decode()
