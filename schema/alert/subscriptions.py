from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from api.alert.models import Alert as AlertModel
from api.alert.models import AlertKind
from api.alert.service import visible_kinds
from api.auth.permissions import Capability, capabilities_of
from api.errors import Invalid
from schema.alert.types import Alert, AlertKindEnum
from schema.context import Context, Info
from schema.permissions import guarded


async def _recheck(context: Context) -> None:
    """The connection's credentials checked again, as the next HTTP request would check them: a
    revoked staff member or API key (or an expired token) gets UNAUTHENTICATED and no more alerts;
    a changed role applies from now on."""
    assert context.websocket is not None
    principal = await context.websocket.authenticate()
    context.principal, context.capabilities = principal, capabilities_of(principal)


async def _take_batch(queue: asyncio.Queue[AlertModel]) -> list[AlertModel]:
    """The next alert, and whatever else arrived with it (one credentials check covers them all)."""
    batch: list[AlertModel] = [await queue.get()]
    while not queue.empty():
        batch.append(queue.get_nowait())
    return batch


async def _live_alerts(context: Context, wanted: frozenset[AlertKind]) -> AsyncGenerator[Alert, None]:
    assert context.alert_feed is not None
    await _recheck(context)
    async with context.alert_feed.listen() as queue:
        while True:
            batch = await _take_batch(queue)
            await _recheck(context)
            visible = visible_kinds(context.capabilities) & wanted
            for alert in batch:
                if alert.kind in visible:
                    yield Alert.from_model(alert)


@strawberry.type
class AlertSubscriptions:
    @guarded(
        Capability.CUSTOMER_READ,
        is_subscription=True,
        description="Each new alert as it is raised (over WebSocket, `graphql-transport-ws`), of the kinds "
        "the caller may read, as in `alerts`. The connection's credentials are checked again before each "
        "delivery: revoked access ends the subscription with UNAUTHENTICATED.",
    )
    async def alert_raised(
        self,
        info: Info,
        kinds: Annotated[
            list[AlertKindEnum] | None,  # type: ignore[valid-type]
            strawberry.argument(description="Only these kinds (default: every kind the caller may read)."),
        ] = None,
    ) -> AsyncGenerator[Alert, None]:
        if info.context.alert_feed is None:
            raise Invalid("subscribe over a WebSocket (`graphql-transport-ws` on /graphql)")
        return _live_alerts(info.context, frozenset(kinds or AlertKind))
