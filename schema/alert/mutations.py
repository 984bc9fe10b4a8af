from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.alert.models import Alert as AlertModel
from api.alert.service import HiddenAlert, acknowledge_alert
from api.audit.record import Actor
from api.auth.permissions import Capability
from schema.alert.types import Alert
from schema.context import Info
from schema.mutations import UserError, run_mutation
from schema.permissions import guarded
from schema.scalars import parse_id


@strawberry.input
class AcknowledgeAlertInput:
    id: strawberry.ID = strawberry.field(description="The Alert's id.")


@strawberry.type
class AcknowledgeAlertPayload:
    alert: Alert | None = strawberry.field(description="The alert, ACKNOWLEDGED, with who did it and when.")
    user_errors: list[UserError]


@strawberry.type
class AlertMutations:
    @guarded(
        Capability.ALERT_ACKNOWLEDGE,
        description="Mark an alert as seen and handled. Only an alert the caller may see: its kind needs "
        "the same read access as in `alerts` (otherwise NOT_FOUND, as for a missing id, and the attempt is "
        "recorded as a security event). Acknowledging again changes nothing.",
    )
    async def acknowledge_alert(self, info: Info, input: AcknowledgeAlertInput) -> AcknowledgeAlertPayload | None:
        capabilities = info.context.capabilities

        async def work(session: AsyncSession, actor: Actor) -> AlertModel:
            try:
                return await acknowledge_alert(session, actor, parse_id(input.id, "Alert"), capabilities)
            except HiddenAlert as hidden:  # answered as missing, recorded like any refusal
                info.context.denials.add((hidden.capability, "Mutation.acknowledgeAlert"))
                raise

        outcome = await run_mutation(info, work)
        return AcknowledgeAlertPayload(
            alert=Alert.from_model(outcome.value) if outcome.value else None, user_errors=outcome.user_errors
        )
