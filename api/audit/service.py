"""Audit entries: listing with filters. Writing entries (one per mutation) and chain
verification arrive with the permissions issue."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.models import AuditEntry
from api.common.daterange import DateRange
from api.common.pagination import Page, PageArgs, SortKey
from api.common.queries import count_where, fetch_page

SORT_KEY = SortKey("audit:OCCURRED_AT_DESC", AuditEntry.occurred_at, AuditEntry.id, True)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    occurred: DateRange = field(default_factory=DateRange)


def audit_conditions(flt: AuditFilter) -> list[ColumnElement[bool]]:
    conditions = [flt.occurred.clause(AuditEntry.occurred_at)]
    if flt.actor:
        conditions.append(or_(AuditEntry.actor_subject == flt.actor, AuditEntry.actor_role == flt.actor.lower()))
    if flt.action:
        conditions.append(AuditEntry.action == flt.action)
    if flt.target_type:
        conditions.append(AuditEntry.target_type == flt.target_type)
    if flt.target_id:
        conditions.append(AuditEntry.target_id == flt.target_id)
    return conditions


async def list_audit_entries(session: AsyncSession, flt: AuditFilter, page: PageArgs) -> Page[AuditEntry]:
    return await fetch_page(session, select(AuditEntry).where(*audit_conditions(flt)), SORT_KEY, page)


async def count_audit_entries(session: AsyncSession, flt: AuditFilter) -> int:
    return await count_where(session, AuditEntry, audit_conditions(flt))
