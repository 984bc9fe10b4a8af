"""The health score from a customer's facts: five components (each 0 to 100), their weighted sum and
the band. Pure functions; README "Customer health" states the same rules in prose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from api.health.models import HealthBand
from api.usage.models import MeterAggregation
from api.usage.periods import decimal_text

WEIGHTS: dict[str, int] = {"usage": 30, "engagement": 25, "support": 20, "payment": 15, "adoption": 10}
COMPONENTS = tuple(WEIGHTS)
assert sum(WEIGHTS.values()) == 100

NEUTRAL = Decimal(50)  # usage without a quota, adoption without a meter: neither good nor bad
ENGAGEMENT_DAYS = 30
SUPPORT_DAYS = 90  # support actions and failed payments are counted over this many days
SUPPORT_ACTIONS = ("refundInvoice", "issueCredit", "extendTrial")
SUPPORT_PENALTY = 25  # points per support action
FAILED_PAYMENT_PENALTY = 20
OPEN_DUNNING_PENALTY = 30
OVERDUE_INVOICE_PENALTY = 20
LEVEL_SHARE, TREND_SHARE = Decimal("0.7"), Decimal("0.3")
MIN_PACE_SPAN = timedelta(days=1)
# meters whose value grows through the period: their quota is compared with the period's pace
ACCUMULATING = frozenset({MeterAggregation.SUM, MeterAggregation.COUNT})
HIGH_RISK_BELOW, HEALTHY_ABOVE = Decimal(40), Decimal(70)
CENT = Decimal("0.01")


def rounded(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    """numerator ÷ denominator capped at 1; 1 when there is something over nothing, 0 over 0."""
    if denominator <= 0:
        return Decimal(1) if numerator > 0 else Decimal(0)
    return min(Decimal(1), numerator / denominator)


@dataclass(frozen=True, slots=True)
class QuotaUse:
    """One meter under a quota: usage so far this period and over the same span one period earlier."""

    meter_key: str
    aggregation: MeterAggregation
    limit: Decimal
    used: Decimal
    previous: Decimal
    elapsed: timedelta  # of the period, up to the computation
    length: timedelta  # of the period

    @property
    def expected(self) -> Decimal:
        """What the quota allows by now: pro rata of the period for accumulating meters."""
        if self.aggregation not in ACCUMULATING or self.length <= timedelta(0):
            return self.limit
        span = min(max(self.elapsed, MIN_PACE_SPAN), self.length)
        return self.limit * Decimal(span / self.length)

    @property
    def level(self) -> Decimal:
        return _ratio(self.used, self.expected)

    @property
    def trend(self) -> Decimal:
        if self.previous <= 0:
            return Decimal(1) if self.used > 0 else Decimal("0.5")
        return min(Decimal(1), self.used / self.previous)

    @property
    def score(self) -> Decimal:
        return 100 * (LEVEL_SHARE * self.level + TREND_SHARE * self.trend)

    def to_json(self) -> dict[str, Any]:
        return {
            "meter": self.meter_key,
            "limit": decimal_text(self.limit),
            "expected": decimal_text(rounded(self.expected)),
            "used": decimal_text(self.used),
            "previous": decimal_text(self.previous),
        }


@dataclass(slots=True)
class HealthFacts:
    """What a customer's components are computed from."""

    quotas: list[QuotaUse]
    active_days: int = 0
    support_actions: int = 0
    failed_payments: int = 0
    open_dunning_cases: int = 0
    overdue_invoices: int = 0
    plan_meters: int = 0
    meters_in_use: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "quotas": [q.to_json() for q in self.quotas],
            "active_days": self.active_days,
            "support_actions": self.support_actions,
            "failed_payments": self.failed_payments,
            "open_dunning_cases": self.open_dunning_cases,
            "overdue_invoices": self.overdue_invoices,
            "plan_meters": self.plan_meters,
            "meters_in_use": self.meters_in_use,
        }


def usage_score(quotas: list[QuotaUse]) -> Decimal:
    if not quotas:
        return NEUTRAL
    return sum((q.score for q in quotas), Decimal(0)) / len(quotas)


def engagement_score(active_days: int) -> Decimal:
    return Decimal(100) * min(active_days, ENGAGEMENT_DAYS) / ENGAGEMENT_DAYS


def support_score(actions: int) -> Decimal:
    return Decimal(max(0, 100 - SUPPORT_PENALTY * actions))


def payment_score(failed_payments: int, open_dunning_cases: int, overdue_invoices: int) -> Decimal:
    penalty = (
        FAILED_PAYMENT_PENALTY * failed_payments
        + OPEN_DUNNING_PENALTY * open_dunning_cases
        + OVERDUE_INVOICE_PENALTY * overdue_invoices
    )
    return Decimal(max(0, 100 - penalty))


def adoption_score(meters_in_use: int, plan_meters: int) -> Decimal:
    if plan_meters == 0:
        return NEUTRAL
    return Decimal(100) * meters_in_use / plan_meters


def band_of(score: Decimal) -> HealthBand:
    if score < HIGH_RISK_BELOW:
        return HealthBand.HIGH_RISK
    if score > HEALTHY_ABOVE:
        return HealthBand.HEALTHY
    return HealthBand.MEDIUM


@dataclass(frozen=True, slots=True)
class Health:
    components: dict[str, Decimal]  # name → 0 to 100, rounded to 0.01
    score: Decimal  # the weighted sum of the rounded components, rounded to 0.01
    band: HealthBand


def score_health(facts: HealthFacts) -> Health:
    components = {
        "usage": usage_score(facts.quotas),
        "engagement": engagement_score(facts.active_days),
        "support": support_score(facts.support_actions),
        "payment": payment_score(facts.failed_payments, facts.open_dunning_cases, facts.overdue_invoices),
        "adoption": adoption_score(facts.meters_in_use, facts.plan_meters),
    }
    components = {name: rounded(value) for name, value in components.items()}
    score = rounded(sum((WEIGHTS[name] * value for name, value in components.items()), Decimal(0)) / 100)
    return Health(components, score, band_of(score))


def describe(component: str, inputs: dict[str, Any]) -> str:
    """The facts behind one stored component, in words."""
    match component:
        case "usage":
            quotas = inputs.get("quotas", [])
            if not quotas:
                return "no usage quota in the plan (neutral 50)"
            return "; ".join(
                f"{q['meter']}: {q['used']} used of {q['expected']} expected by now (limit {q['limit']}), "
                f"{q['previous']} over the same span last period"
                for q in quotas
            )
        case "engagement":
            return f"{inputs['active_days']} active day(s) in the last {ENGAGEMENT_DAYS}"
        case "support":
            actions = inputs["support_actions"]
            return f"{actions} refund(s), credit(s) or trial extension(s) in the last {SUPPORT_DAYS} days"
        case "payment":
            return (
                f"{inputs['failed_payments']} failed payment(s) in the last {SUPPORT_DAYS} days, "
                f"{inputs['open_dunning_cases']} open dunning case(s), {inputs['overdue_invoices']} overdue invoice(s)"
            )
        case _:
            if not inputs.get("plan_meters"):
                return "no meter in the plan (neutral 50)"
            return f"{inputs['meters_in_use']} of {inputs['plan_meters']} plan meter(s) used this period"
