"""Turn an Authorization header into a Principal, or say precisely why not."""

from __future__ import annotations

from api.auth.principal import Principal
from api.auth.tokens import TokenVerifier
from api.errors import Unauthenticated

API_KEY_PREFIX = "llk_"


async def authenticate(authorization: str | None, verifier: TokenVerifier) -> Principal:
    if not authorization:
        raise Unauthenticated("missing Authorization header: send `Authorization: Bearer <token>`")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthenticated("Authorization header must be `Bearer <token>`")
    token = credentials.strip()
    if token.startswith(API_KEY_PREFIX):
        raise Unauthenticated("API keys are not accepted yet; use a staff token")
    return await verifier.verify(token)
