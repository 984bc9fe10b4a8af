from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from api.audit.models import AuditEntry as AuditEntryModel
from api.audit.models import AuditOutcome
from schema.scalars import Node, to_global_id

AuditOutcomeEnum = strawberry.enum(AuditOutcome, name="AuditOutcome")


@strawberry.type(description="Who acted: a staff subject with a role, or an integration's API key.")
class AuditActor:
    subject: str
    role: str | None
    api_key_id: str | None


@strawberry.type(description="One audited action, written in the same transaction as the change it records.")
class AuditEntry(Node):
    occurred_at: datetime
    actor: AuditActor
    action: str
    target_type: str
    target_id: str | None
    before: JSON | None
    after: JSON | None
    outcome: AuditOutcomeEnum  # type: ignore[valid-type]
    request_id: str | None
    ip: str | None
    user_agent: str | None

    @classmethod
    def from_model(cls, m: AuditEntryModel) -> AuditEntry:
        return cls(
            id=to_global_id("AuditEntry", m.id),
            occurred_at=m.occurred_at,
            actor=AuditActor(
                subject=m.actor_subject,
                role=m.actor_role,
                api_key_id=str(m.api_key_id) if m.api_key_id else None,
            ),
            action=m.action,
            target_type=m.target_type,
            target_id=m.target_id,
            before=cast(JSON, m.before),
            after=cast(JSON, m.after),
            outcome=m.outcome,
            request_id=m.request_id,
            ip=m.ip,
            user_agent=m.user_agent,
        )
