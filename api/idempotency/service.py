"""Mutation idempotency: one key per (actor, mutation, idempotencyKey).

`MutationKey` derives everything a mutation needs from the client's key: the Stripe
idempotency key of each step (so a retry after a failed local commit gets Stripe's first
answer back) and deterministic local ids (so that replayed Stripe answers and local rows agree).
Without a client key a random one is used: the SDK's own network retries still reuse it."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor
from api.errors import Invalid, Rejected
from api.idempotency.models import MutationIdempotency

MAX_KEY_LENGTH = 255
_LOCAL_ID_NAMESPACE = uuid.UUID("6f1d3c52-4b7e-4f0e-9a51-2d6c8e0b7a13")


def fingerprint(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a mutation's input (the key itself excluded by the caller)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MutationKey:
    subject: str
    mutation: str
    key: str
    input_hash: str
    supplied: bool = field(default=True)

    @classmethod
    def of(cls, actor: Actor, mutation: str, key: str | None, payload: Mapping[str, Any]) -> MutationKey:
        if key is not None:
            key = key.strip()
            if not key or len(key) > MAX_KEY_LENGTH:
                raise Invalid(f"`idempotencyKey` must be 1 to {MAX_KEY_LENGTH} characters", field="idempotencyKey")
        return cls(
            subject=actor.subject,
            mutation=mutation,
            key=key if key is not None else uuid.uuid4().hex,
            input_hash=fingerprint(payload),
            supplied=key is not None,
        )

    @property
    def _digest(self) -> str:
        return hashlib.sha256(f"{self.subject}\x00{self.mutation}\x00{self.key}".encode()).hexdigest()

    @property
    def lock_name(self) -> str:
        return f"mutation-idempotency:{self._digest}"

    def stripe_key(self, step: str) -> str:
        """The Idempotency-Key of one Stripe write of this mutation (stable across retries)."""
        return f"ledgerline-{self.mutation}-{step}-{self._digest[:48]}"

    def local_id(self, name: str) -> uuid.UUID:
        """A local primary key that is the same on every retry with this key."""
        return uuid.uuid5(_LOCAL_ID_NAMESPACE, f"{self._digest}:{name}")


async def previous_result(session: AsyncSession, mk: MutationKey) -> dict[str, Any] | None:
    """The stored result of the first call with this key, or None. Serialises concurrent calls
    with the same key (a transaction-scoped advisory lock) so only one of them does the work."""
    if not mk.supplied:
        return None
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": mk.lock_name},
    )
    row = (
        await session.execute(
            select(MutationIdempotency).where(
                MutationIdempotency.actor_subject == mk.subject,
                MutationIdempotency.mutation == mk.mutation,
                MutationIdempotency.idempotency_key == mk.key,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.input_hash != mk.input_hash:
        raise Rejected(
            f"this idempotencyKey was already used for a different {mk.mutation} input",
            code="IDEMPOTENCY_KEY_REUSED",
            field="idempotencyKey",
        )
    return row.result


async def remember(session: AsyncSession, mk: MutationKey, result: dict[str, Any]) -> None:
    """Store the result in the mutation's own transaction (it exists only if the change does)."""
    if not mk.supplied:
        return
    session.add(
        MutationIdempotency(
            actor_subject=mk.subject,
            mutation=mk.mutation,
            idempotency_key=mk.key,
            input_hash=mk.input_hash,
            result=result,
        )
    )
    await session.flush()
