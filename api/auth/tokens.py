"""Bearer JWTs: HS256 with JWT_SECRET for local use, RS256/ES256 from JWKS_URL for an identity
provider. Every failure says which check failed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    DecodeError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet, OctKey
from joserfc.jwt import JWTClaimsRegistry

from api.auth.principal import Principal
from api.auth.roles import Role
from api.errors import Unauthenticated
from api.settings import Settings

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]


def parse_ttl(text: str) -> int:
    """'8h', '30m', '2d', '45s' or plain seconds → seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        seconds = int(text[:-1]) * units[text[-1]] if text and text[-1] in units else int(text)
    except ValueError:
        raise ValueError(f"invalid ttl {text!r}: use a number with s, m, h or d (e.g. 8h)") from None
    if seconds <= 0:
        raise ValueError("ttl must be positive")
    return seconds


def issue_token(settings: Settings, subject: str, role: Role, ttl_seconds: int = 8 * 3600) -> str:
    now = int(time.time())
    claims = {
        "sub": subject,
        "role": role.value,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, OctKey.import_key(settings.jwt_secret))


@dataclass
class _CachedKeySet:
    keys: KeySet
    fetched_at: float


class TokenVerifier:
    """Verifies bearer JWTs. One per process (it caches the JWKS)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._hs_key = OctKey.import_key(settings.jwt_secret)
        self._jwks: _CachedKeySet | None = None
        self._registry = JWTClaimsRegistry(
            iss={"essential": True, "value": settings.jwt_issuer},
            aud={"essential": True, "value": settings.jwt_audience},
            sub={"essential": True},
        )
        self._expiry = JWTClaimsRegistry(exp={"essential": True}, nbf={"essential": False}, leeway=30)

    async def _keyset(self) -> KeySet:
        url = self._settings.jwks_url
        assert url is not None
        cached = self._jwks
        if cached is None or time.monotonic() - cached.fetched_at > self._settings.jwks_cache_seconds:
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    response = await client.get(url)
                    response.raise_for_status()
                    cached = _CachedKeySet(KeySet.import_key_set(response.json()), time.monotonic())
            except (httpx.HTTPError, ValueError, JoseError) as exc:
                raise Unauthenticated(f"cannot fetch the identity provider's keys: {exc}") from exc
            self._jwks = cached
        return cached.keys

    async def verify(self, token: str) -> Principal:
        try:
            if self._settings.jwks_url:
                decoded = jwt.decode(token, await self._keyset(), algorithms=ASYMMETRIC_ALGORITHMS)
            else:
                decoded = jwt.decode(token, self._hs_key, algorithms=["HS256"])
        except BadSignatureError:
            raise Unauthenticated("token signature is invalid") from None
        except (DecodeError, ValueError):
            raise Unauthenticated("token is malformed (expected a signed JWT)") from None
        except JoseError as exc:
            raise Unauthenticated(f"token rejected: {exc.description or exc.error}") from None
        return self._principal(decoded.claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        try:
            self._expiry.validate(claims)
            self._registry.validate(claims)
        except ExpiredTokenError:
            raise Unauthenticated("token has expired") from None
        except MissingClaimError as exc:
            raise Unauthenticated(f"token is missing the '{exc.claim}' claim") from None
        except InvalidClaimError as exc:
            what = {"aud": "audience", "iss": "issuer"}.get(exc.claim, exc.claim)
            raise Unauthenticated(f"token has the wrong {what} ('{exc.claim}' claim)") from None
        except JoseError as exc:
            raise Unauthenticated(f"token rejected: {exc.description or exc.error}") from None
        role_claim = claims.get("role")
        if not isinstance(role_claim, str):
            raise Unauthenticated("token is missing the 'role' claim")
        try:
            role = Role.parse(role_claim)
        except ValueError as exc:
            raise Unauthenticated(f"token 'role' claim: {exc}") from None
        return Principal.staff(str(claims["sub"]), role)
