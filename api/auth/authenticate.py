"""Turn an Authorization header into a Principal, or say precisely why not."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.apikeys import KEY_PREFIX, authenticate_api_key
from api.auth.principal import Principal
from api.auth.staff import apply_staff_policy
from api.auth.tokens import TokenVerifier
from api.common.reads import DriverReads
from api.errors import Unauthenticated
from api.graphiql import PLACEHOLDER_TOKEN


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing Authorization header: send `Authorization: Bearer <token>`")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthenticated("Authorization header must be `Bearer <token>`")
    token = credentials.strip()
    if token == PLACEHOLDER_TOKEN:
        raise Unauthenticated(
            "replace the placeholder with a token: `make run` prints one per role, "
            "or run `ledgerline token --role owner`"
        )
    return token


async def authenticate(
    authorization: str | None,
    verifier: TokenVerifier,
    session_factory: async_sessionmaker[AsyncSession],
    reads: DriverReads,
) -> Principal:
    """Staff JWT (with the owner's overrides and revocations applied) or an integration's API key."""
    token = bearer_token(authorization)
    if token.startswith(KEY_PREFIX):
        async with session_factory() as session:
            return await authenticate_api_key(session, token)
    return await apply_staff_policy(reads, session_factory, await verifier.verify(token))
