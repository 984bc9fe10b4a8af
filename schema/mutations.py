"""How every mutation runs: the edge owns the transaction (services flush, never commit), the
audit entry is written by the service inside it, expected failures become `userErrors`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor
from api.errors import Conflict, Invalid, NotFound
from schema.context import Info

T = TypeVar("T")


@strawberry.type(description="An expected failure: bad input, a missing object, a conflict, a declined card.")
class UserError:
    field: str | None = strawberry.field(description="The input field at fault, e.g. `input.scopes`.")
    message: str
    code: str


@dataclass(slots=True)
class Outcome(Generic[T]):
    value: T | None
    user_errors: list[UserError]


def _input_path(field: str | None) -> str | None:
    return f"input.{field}" if field and not field.startswith("input") else field


async def run_mutation(info: Info, work: Callable[[AsyncSession, Actor], Awaitable[T]]) -> Outcome[T]:
    """One transaction: commit when `work` succeeds, roll back everything (change and audit entry)
    when it raises. Expected failures are returned as user errors; anything else propagates."""
    context = info.context
    try:
        async with context.session() as session, session.begin():
            value = await work(session, context.actor())
    except (Invalid, NotFound, Conflict) as exc:
        code = exc.extensions["code"]  # a Rejected error carries its own (e.g. Stripe's `card_declined`)
        return Outcome(None, [UserError(field=_input_path(exc.field), message=exc.message, code=code)])
    return Outcome(value, [])
