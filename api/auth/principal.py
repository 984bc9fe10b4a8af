"""Who is calling: a staff member (JWT) or an integration (API key)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field

from api.auth.roles import Role, Scope


class PrincipalKind(enum.StrEnum):
    STAFF = "STAFF"
    INTEGRATION = "INTEGRATION"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    kind: PrincipalKind
    role: Role | None = None
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    api_key_id: uuid.UUID | None = None

    @classmethod
    def staff(cls, subject: str, role: Role) -> Principal:
        return cls(subject=subject, kind=PrincipalKind.STAFF, role=role)
