"""Dunning: read side (the case list with each case's steps and emails)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from api.common.daterange import DateRange
from api.common.pagination import Page, PageArgs, SortKey
from api.common.queries import count_where, fetch_page
from api.dunning.models import DunningCase, DunningCaseStatus, DunningStep
from api.mail.models import OutboundEmail

SORT_KEY = SortKey("dunning_case:OPENED_AT_DESC", DunningCase.opened_at, DunningCase.id, True)


@dataclass(frozen=True, slots=True)
class DunningCaseFilter:
    statuses: Sequence[DunningCaseStatus] = ()
    customer_id: uuid.UUID | None = None
    opened: DateRange = field(default_factory=DateRange)


@dataclass(frozen=True, slots=True)
class CaseView:
    case: DunningCase
    steps: list[DunningStep]
    emails: list[OutboundEmail]


def _conditions(flt: DunningCaseFilter) -> list[ColumnElement[bool]]:
    conditions = [flt.opened.clause(DunningCase.opened_at)]
    if flt.statuses:
        conditions.append(DunningCase.status.in_(flt.statuses))
    if flt.customer_id is not None:
        conditions.append(DunningCase.customer_id == flt.customer_id)
    return conditions


async def _grouped(
    session: AsyncSession, key_column: InstrumentedAttribute[Any], keys: Sequence[Any], *order_by: Any
) -> dict[Any, list[Any]]:
    """The rows whose `key_column` is one of `keys`, in order, grouped by key: one statement."""
    stmt = select(key_column.class_).where(key_column.in_(set(keys))).order_by(*order_by)
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for row in (await session.execute(stmt)).scalars():
        grouped[getattr(row, key_column.key)].append(row)
    return grouped


async def case_views(session: AsyncSession, cases: Sequence[DunningCase]) -> list[CaseView]:
    """The cases with their steps (in order) and emails: two statements for any number of cases."""
    ids = [c.id for c in cases]
    steps = await _grouped(session, DunningStep.case_id, ids, DunningStep.position)
    emails = await _grouped(session, OutboundEmail.related_id, ids, OutboundEmail.created_at, OutboundEmail.id)
    return [CaseView(c, steps.get(c.id, []), emails.get(c.id, [])) for c in cases]


async def list_cases(session: AsyncSession, flt: DunningCaseFilter, page: PageArgs) -> Page[CaseView]:
    found = await fetch_page(session, select(DunningCase).where(*_conditions(flt)), SORT_KEY, page)
    return Page(await case_views(session, found.items), found.cursors, found.has_next_page, found.has_previous_page)


async def find_case(session: AsyncSession, case_id: uuid.UUID) -> CaseView | None:
    """One case with its steps and emails, as the list shows it; None when it does not exist."""
    case = await session.get(DunningCase, case_id)
    return (await case_views(session, [case]))[0] if case is not None else None


async def count_cases(session: AsyncSession, flt: DunningCaseFilter) -> int:
    return await count_where(session, DunningCase, _conditions(flt))
