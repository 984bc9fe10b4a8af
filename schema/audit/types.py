from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from api.audit.models import AuditEntry as AuditEntryModel
from api.audit.models import AuditOutcome
from api.audit.verify import ChainStatus
from api.auth.permissions import Capability
from schema.permissions import guarded
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
    ip: str | None = guarded(Capability.AUDIT_NETWORK_READ)
    user_agent: str | None = guarded(Capability.AUDIT_NETWORK_READ)

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


@strawberry.type(description="The result of verifying the audit hash chain, entry by entry, just now.")
class AuditChainStatus:
    ok: bool = strawberry.field(description="True when every entry matches its hash and links to the one before.")
    entries_checked: int = strawberry.field(description="Entries examined (the broken one included).")
    first_broken_id: strawberry.ID | None = strawberry.field(
        description="Global id of the first entry whose content was altered or whose link is broken."
    )
    reason: str | None = strawberry.field(
        description="Why that entry fails: `content altered: …` or `link broken: …` (an entry removed or inserted)."
    )
    last_hash: str | None = strawberry.field(
        description="Hash of the last intact entry (the chain head when ok): record it elsewhere to detect truncation."
    )
    checked_at: datetime

    @classmethod
    def from_status(cls, status: ChainStatus, checked_at: datetime) -> AuditChainStatus:
        return cls(
            ok=status.ok,
            entries_checked=status.entries_checked,
            first_broken_id=(
                to_global_id("AuditEntry", status.first_broken_id) if status.first_broken_id is not None else None
            ),
            reason=status.reason,
            last_hash=status.last_hash,
            checked_at=checked_at,
        )
