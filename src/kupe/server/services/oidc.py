"""Members' OIDC access tokens: signature against the issuer's JWKS, issuer, audience, expiry.

Only asymmetric algorithms are accepted, so a token can never be "signed" with a public key
used as an HMAC secret, and `none` is never an option.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError

from kupe.core.clock import Clock
from kupe.core.errors import ServiceUnavailable, Unauthorized

ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
LEEWAY_SECONDS = 30
FETCH_TIMEOUT_SECONDS = 5.0
JWKS_CACHE_SECONDS = 300


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments: worth handing to the verifier."""
    return token.count(".") == 2 and not token.startswith("kupe_")


class OidcVerifier:
    """Checks an access token and returns its (lower-cased) `email` claim."""

    def __init__(self, issuer: str, audience: str, jwks_url: str | None, clock: Clock) -> None:
        self.issuer = issuer
        self.audience = audience
        self.clock = clock
        self._jwks_url = jwks_url
        self._client: PyJWKClient | None = None
        self._discovery = asyncio.Lock()

    async def email(self, token: str) -> str:
        """The verified token's email; 401 for any problem with the token itself."""
        return email_of(await self.verified_claims(token))

    async def verified_claims(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """The claims of a token signed by the issuer for `audience` (default: the API's),
        unexpired; 401 for any problem with the token itself."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("Invalid token") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized("Token algorithm is not accepted")
        key = await self._signing_key(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=audience or self.audience,
                issuer=self.issuer,
                # Time claims are checked below against the server's clock.
                options={
                    "require": ["exp", "iss", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAudienceError:
            raise Unauthorized("Token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("Token issuer is not accepted") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("Token signature is invalid") from None
        except jwt.PyJWTError:
            raise Unauthorized("Invalid token") from None
        self._check_times(claims)
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self.clock.now().timestamp()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise Unauthorized("Invalid token")
        if now >= exp + LEEWAY_SECONDS:
            raise Unauthorized("Token has expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and now + LEEWAY_SECONDS < nbf:
            raise Unauthorized("Token is not valid yet")

    async def _signing_key(self, token: str) -> PyJWK:
        client = await self._jwk_client()
        try:
            # PyJWKClient caches the key set and fetches with blocking I/O: keep it off the loop.
            return await asyncio.to_thread(client.get_signing_key_from_jwt, token)
        except PyJWKClientConnectionError:
            raise _unreachable() from None
        except (PyJWKClientError, jwt.PyJWTError):
            raise Unauthorized("Token is not signed by a known key") from None

    async def _jwk_client(self) -> PyJWKClient:
        if self._client is None:
            async with self._discovery:
                if self._client is None:
                    url = self._jwks_url or await self._discover()
                    self._client = PyJWKClient(
                        url, lifespan=JWKS_CACHE_SECONDS, timeout=FETCH_TIMEOUT_SECONDS
                    )
        return self._client

    async def _discover(self) -> str:
        """The issuer's jwks_uri from its OpenID discovery document."""
        document = await self.discovery()
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise _unreachable()
        return jwks_uri

    async def discovery(self) -> dict[str, Any]:
        """The issuer's OpenID discovery document (its `issuer` must be this issuer)."""
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS) as client:
                response = await client.get(url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError):
            raise _unreachable() from None
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise _unreachable()
        return document


def email_of(claims: dict[str, Any]) -> str:
    """A verified token's (lower-cased) email; 401 when it has none or it is unverified."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise Unauthorized("Token has no email claim")
    if claims.get("email_verified") is False:
        raise Unauthorized("Token's email address is not verified")
    return email.strip().lower()


def _unreachable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The OIDC issuer's signing keys cannot be fetched; retry shortly",
        headers={"Retry-After": "5"},
    )
