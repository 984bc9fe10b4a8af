"""GraphQL types of customer health (definitions: README, "Customer health")."""

from __future__ import annotations

import enum
from datetime import date, datetime

import strawberry

from api.health.models import HealthBand
from api.health.service import Component, CurrentHealth

HealthBandEnum = strawberry.enum(HealthBand, name="HealthBand", description="HIGH_RISK < 40 ≤ MEDIUM ≤ 70 < HEALTHY.")


@strawberry.enum(description="Where the score went over the last 7 days (a change of 5 points or more).")
class HealthTrendDirection(enum.Enum):
    IMPROVING = "IMPROVING"
    STABLE = "STABLE"
    DECLINING = "DECLINING"


@strawberry.type(description="One part of the health score, 0 to 100 (100 = healthiest).")
class HealthComponent:
    name: str = strawberry.field(description="usage, engagement, support, payment or adoption.")
    weight: int = strawberry.field(description="Its share of the score, in percent.")
    score: float
    detail: str = strawberry.field(description="The facts it was computed from.")

    @classmethod
    def of(cls, c: Component) -> HealthComponent:
        return cls(name=c.name, weight=c.weight, score=float(c.score), detail=c.detail)


@strawberry.type(description="How the score moved: against the oldest snapshot within 7 and within 30 days before.")
class HealthTrend:
    delta7d: float | None = strawberry.field(
        name="delta7d", description="Score minus the oldest score of the 7 days before; null without one."
    )
    delta30d: float | None = strawberry.field(
        name="delta30d", description="Score minus the oldest score of the 30 days before; null without one."
    )
    direction: HealthTrendDirection = strawberry.field(
        description="IMPROVING when delta7d ≥ 5, DECLINING when ≤ -5, STABLE otherwise (or without history)."
    )


@strawberry.type(description="A customer's health and churn risk, as computed daily.")
class CustomerHealth:
    score: float = strawberry.field(description="0 to 100: the weighted sum of the components.")
    band: HealthBandEnum  # type: ignore[valid-type]
    components: list[HealthComponent]
    trend: HealthTrend
    as_of: datetime = strawberry.field(description="When the score was computed.")
    computed_on: date = strawberry.field(description="The UTC day of the snapshot.")

    @classmethod
    def of(cls, h: CurrentHealth) -> CustomerHealth:
        return cls(
            score=float(h.score),
            band=h.band,
            components=[HealthComponent.of(c) for c in h.components],
            trend=HealthTrend(
                delta7d=float(h.delta_7d) if h.delta_7d is not None else None,
                delta30d=float(h.delta_30d) if h.delta_30d is not None else None,
                direction=HealthTrendDirection(h.direction),
            ),
            as_of=h.as_of,
            computed_on=h.computed_on,
        )
