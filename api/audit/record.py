"""Writing audit entries: one per mutation, in the mutation's own transaction, hash-chained.

Chaining needs one writer at a time: a transaction-scoped advisory lock serialises the read of
the last hash with the insert (held only until that transaction commits or rolls back)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, cast, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import GENESIS_HASH, entry_hash
from api.audit.models import AuditEntry, AuditOutcome
from api.auth.principal import Principal
from api.db import utcnow

AUDIT_CHAIN_LOCK = 0x4C4C_4155  # any constant shared by every writer of the chain


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it and from where: what every audit entry and security event records."""

    subject: str
    role: str | None
    api_key_id: uuid.UUID | None
    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(
        cls, principal: Principal, request_id: str | None = None, ip: str | None = None, user_agent: str | None = None
    ) -> Actor:
        return cls(
            subject=principal.subject,
            role=principal.role.value if principal.role else None,
            api_key_id=principal.api_key_id,
            request_id=request_id,
            ip=ip,
            user_agent=(user_agent or "")[:500] or None,
        )

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(subject=name, role=None, api_key_id=None)


def changed_fields(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Keep only the fields that differ (both sides), so entries say what changed."""
    if before is None or after is None:
        return before, after
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


async def _as_stored(
    session: AsyncSession, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """before/after exactly as JSONB will return them (it keeps numbers as `numeric`: 1e16 comes
    back as an integer, -0.0 as 0), so the hash covers what a later verification reads."""
    if before is None and after is None:
        return None, None
    row = (
        await session.execute(
            select(
                cast(bindparam("before", before, type_=JSONB), JSONB),
                cast(bindparam("after", after, type_=JSONB), JSONB),
            )
        )
    ).one()
    return row[0], row[1]


async def record_audit(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    occurred_at: datetime | None = None,
) -> AuditEntry:
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_CHAIN_LOCK})
    prev_hash = (
        await session.execute(select(AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1))
    ).scalar_one_or_none() or GENESIS_HASH
    before, after = await _as_stored(session, *changed_fields(before, after))
    values: dict[str, Any] = {
        "occurred_at": occurred_at or utcnow(),
        "actor_subject": actor.subject,
        "actor_role": actor.role,
        "api_key_id": actor.api_key_id,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "before": before,
        "after": after,
        "outcome": outcome,
        "request_id": actor.request_id,
        "ip": actor.ip,
        "user_agent": actor.user_agent,
    }
    entry = AuditEntry(**values, prev_hash=prev_hash, entry_hash=entry_hash(prev_hash, values))
    session.add(entry)
    await session.flush()
    return entry
