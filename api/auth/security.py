"""Security events: failed authentication, forbidden attempts, API key misuse, bad webhook
signatures. Written in their own short transaction: a denied request has nothing else to commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.audit.record import Actor
from api.auth.models import SecurityEvent, SecurityEventKind
from api.common.daterange import DateRange
from api.common.pagination import Page, PageArgs, SortKey
from api.common.queries import count_where, fetch_page

SORT_KEY = SortKey("security_event:OCCURRED_AT_DESC", SecurityEvent.occurred_at, SecurityEvent.id, True)


@dataclass(frozen=True, slots=True)
class SecurityEventRecord:
    kind: SecurityEventKind
    attempted: str | None
    detail: str | None = None


async def record_security_events(
    session_factory: async_sessionmaker[AsyncSession], actor: Actor, events: Iterable[SecurityEventRecord]
) -> None:
    rows = [
        {
            "kind": e.kind,
            "subject": actor.subject,
            "role": actor.role,
            "api_key_id": actor.api_key_id,
            "attempted": (e.attempted or "")[:500] or None,
            "detail": (e.detail or "")[:1000] or None,
            "ip": actor.ip,
            "user_agent": actor.user_agent,
            "request_id": actor.request_id,
        }
        for e in events
    ]
    if not rows:
        return
    async with session_factory() as session, session.begin():
        await session.execute(insert(SecurityEvent), rows)


@dataclass(frozen=True, slots=True)
class SecurityEventFilter:
    kinds: tuple[SecurityEventKind, ...] = ()
    subject: str | None = None
    occurred: DateRange = field(default_factory=DateRange)


def _conditions(flt: SecurityEventFilter) -> list[ColumnElement[bool]]:
    conditions = [flt.occurred.clause(SecurityEvent.occurred_at)]
    if flt.kinds:
        conditions.append(SecurityEvent.kind.in_(flt.kinds))
    if flt.subject:
        conditions.append(SecurityEvent.subject == flt.subject)
    return conditions


async def list_security_events(session: AsyncSession, flt: SecurityEventFilter, page: PageArgs) -> Page[SecurityEvent]:
    return await fetch_page(session, select(SecurityEvent).where(*_conditions(flt)), SORT_KEY, page)


async def count_security_events(session: AsyncSession, flt: SecurityEventFilter) -> int:
    return await count_where(session, SecurityEvent, _conditions(flt))
