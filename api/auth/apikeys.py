"""API keys for integrations: `llk_<prefix>_<secret>`. Only a SHA-256 of the secret is stored;
the prefix finds the row. Rotation issues a new key and lets the old one work for a grace period."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor, record_audit
from api.auth.models import ApiKey
from api.auth.principal import Principal, PrincipalKind
from api.auth.roles import Scope
from api.db import utcnow
from api.errors import Invalid, NotFound, Unauthenticated

KEY_PREFIX = "llk_"
LAST_USED_PRECISION = timedelta(minutes=1)  # last_used_at is written at most this often


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret: str  # shown once


class ApiKeyRejected(Unauthenticated):
    """An API key that exists but may not be used (revoked, expired): a misuse worth recording."""

    def __init__(self, message: str, api_key_id: uuid.UUID) -> None:
        super().__init__(message)
        self.api_key_id = api_key_id


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret() -> tuple[str, str]:
    """(prefix, the whole key). The prefix is hex so `_` can separate it from the secret."""
    prefix = secrets.token_hex(6)
    return prefix, f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


def parse_scopes(values: Sequence[str], field: str = "scopes") -> list[Scope]:
    scopes: list[Scope] = []
    for value in values:
        try:
            scopes.append(Scope(value))
        except ValueError:
            allowed = ", ".join(s.value for s in Scope)
            raise Invalid(f"`{field}`: unknown scope {value!r} (one of: {allowed})", field=field) from None
    if not scopes:
        raise Invalid(f"`{field}` must name at least one scope", field=field)
    return sorted(set(scopes))


def key_snapshot(key: ApiKey) -> dict[str, object]:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "rotated_grace_until": key.rotated_grace_until.isoformat() if key.rotated_grace_until else None,
    }


async def create_api_key(
    session: AsyncSession,
    actor: Actor,
    name: str,
    scopes: Sequence[str],
    expires_at: datetime | None,
    *,
    action: str = "createApiKey",
) -> IssuedKey:
    name = name.strip()
    if not name:
        raise Invalid("`name` must not be empty", field="name")
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid("`expiresAt` must be in the future", field="expiresAt")
    prefix, full = _new_secret()
    key = ApiKey(
        name=name,
        prefix=prefix,
        secret_hash=_hash(full),
        scopes=[s.value for s in parse_scopes(scopes)],
        created_by=actor.subject,
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    await record_audit(session, actor, action, "ApiKey", str(key.id), after=key_snapshot(key))
    return IssuedKey(key=key, secret=full)


async def get_api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    key = await session.get(ApiKey, key_id, with_for_update=True)
    if key is None:
        raise NotFound(f"API key {key_id} does not exist", field="id")
    return key


async def revoke_api_key(session: AsyncSession, actor: Actor, key_id: uuid.UUID) -> ApiKey:
    key = await get_api_key(session, key_id)
    before = key_snapshot(key)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    await record_audit(session, actor, "revokeApiKey", "ApiKey", str(key.id), before=before, after=key_snapshot(key))
    return key


async def rotate_api_key(session: AsyncSession, actor: Actor, key_id: uuid.UUID, grace: timedelta) -> IssuedKey:
    old = await get_api_key(session, key_id)
    if old.revoked_at is not None:
        raise Invalid("a revoked key cannot be rotated", field="id")
    before = key_snapshot(old)
    issued = await create_api_key(session, actor, old.name, old.scopes, old.expires_at, action="rotateApiKey")
    old.rotated_grace_until = utcnow() + grace
    old.replaced_by_id = issued.key.id
    await session.flush()
    await record_audit(session, actor, "rotateApiKey", "ApiKey", str(old.id), before=before, after=key_snapshot(old))
    return issued


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.execute(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id))).scalars())


async def authenticate_api_key(session: AsyncSession, token: str) -> Principal:
    body = token[len(KEY_PREFIX) :]
    prefix, _, secret = body.partition("_")
    if not prefix or not secret:
        raise Unauthenticated("API key is malformed (expected llk_<prefix>_<secret>)")
    key = (await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))).scalar_one_or_none()
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(token)):
        raise Unauthenticated("API key is not valid")
    now = utcnow()
    if key.revoked_at is not None:
        raise ApiKeyRejected("API key has been revoked", key.id)
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiKeyRejected("API key has expired", key.id)
    if key.rotated_grace_until is not None and key.rotated_grace_until <= now:
        raise ApiKeyRejected("API key was rotated and its grace period is over; use the new key", key.id)
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        await session.commit()
    return Principal(
        subject=f"api-key:{key.name}",
        kind=PrincipalKind.INTEGRATION,
        scopes=frozenset(Scope(s) for s in key.scopes),
        api_key_id=key.id,
    )
