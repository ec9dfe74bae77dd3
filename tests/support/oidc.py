"""A tiny OIDC issuer for tests: a key pair generated per run and a real HTTP server on
loopback serving its discovery document and JWKS."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "kupe-api"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def _issuer_key() -> rsa.RSAPrivateKey:
    """One key pair per test run is enough; generating RSA keys is slow."""
    return new_key()


class Issuer:
    """Signs tokens with its key; `url` is its issuer URL, `jwks_url` where its keys are."""

    def __init__(self, url: str, key: rsa.RSAPrivateKey, kid: str = "test-key") -> None:
        self.url = url
        self.key = key
        self.kid = kid
        self.jwks_url = f"{url}/jwks.json"
        self.fetches = 0

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(
        self,
        email: str | None,
        *,
        now: datetime,
        lifetime: int = 300,
        key: rsa.RSAPrivateKey | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        payload: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + lifetime,
            **claims,
        }
        if email is not None:
            payload["email"] = email
        return jwt.encode(
            payload,
            key or self.key,
            algorithm="RS256",
            headers={"kid": self.kid, **(headers or {})},
        )


@contextmanager
def serve_issuer() -> Iterator[Issuer]:
    """Run an issuer on 127.0.0.1 (an ephemeral port) for the duration of the block."""
    holder: dict[str, Issuer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer = holder["issuer"]
            if self.path == "/jwks.json":
                issuer.fetches += 1
                body = issuer.jwks()
            elif self.path == "/.well-known/openid-configuration":
                body = {"issuer": issuer.url, "jwks_uri": issuer.jwks_url}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address[:2]
    holder["issuer"] = Issuer(f"http://{host!s}:{port}", _issuer_key())
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield holder["issuer"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
