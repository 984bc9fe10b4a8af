from __future__ import annotations

from datetime import datetime

import strawberry

from api.auth.models import ApiKey as ApiKeyModel
from api.auth.models import SecurityEvent as SecurityEventModel
from api.auth.models import SecurityEventKind
from api.auth.models import StaffMember as StaffMemberModel
from api.auth.roles import Role
from schema.permissions import RoleEnum
from schema.scalars import Node, to_global_id

SecurityEventKindEnum = strawberry.enum(SecurityEventKind, name="SecurityEventKind")


@strawberry.type(description="A staff subject and the owner's decisions about it.")
class StaffMember:
    subject: str
    role_override: RoleEnum | None = strawberry.field(description="Replaces the token's role claim when set.")  # type: ignore[valid-type]
    revoked: bool
    revoked_at: datetime | None
    updated_by: str
    last_seen_at: datetime | None

    @classmethod
    def from_model(cls, m: StaffMemberModel) -> StaffMember:
        return cls(
            subject=m.subject,
            role_override=Role(m.role_override) if m.role_override else None,
            revoked=m.revoked_at is not None,
            revoked_at=m.revoked_at,
            updated_by=m.updated_by,
            last_seen_at=m.last_seen_at,
        )


@strawberry.type(description="An integration's API key (the secret itself is shown only once, at creation).")
class ApiKey(Node):
    name: str
    prefix: str
    scopes: list[str]
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked: bool
    rotated_grace_until: datetime | None = strawberry.field(
        description="Set once rotated: the key works until then, beside its replacement."
    )

    @classmethod
    def from_model(cls, m: ApiKeyModel) -> ApiKey:
        return cls(
            id=to_global_id("ApiKey", m.id),
            name=m.name,
            prefix=m.prefix,
            scopes=list(m.scopes),
            created_by=m.created_by,
            created_at=m.created_at,
            last_used_at=m.last_used_at,
            expires_at=m.expires_at,
            revoked_at=m.revoked_at,
            revoked=m.revoked_at is not None,
            rotated_grace_until=m.rotated_grace_until,
        )


@strawberry.type(description="A refused or suspicious access: who, what, when, from where.")
class SecurityEvent(Node):
    occurred_at: datetime
    kind: SecurityEventKindEnum  # type: ignore[valid-type]
    subject: str | None
    role: str | None
    api_key_id: str | None
    attempted: str | None
    detail: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None

    @classmethod
    def from_model(cls, m: SecurityEventModel) -> SecurityEvent:
        return cls(
            id=to_global_id("SecurityEvent", m.id),
            occurred_at=m.occurred_at,
            kind=m.kind,
            subject=m.subject,
            role=m.role,
            api_key_id=str(m.api_key_id) if m.api_key_id else None,
            attempted=m.attempted,
            detail=m.detail,
            ip=m.ip,
            user_agent=m.user_agent,
            request_id=m.request_id,
        )
