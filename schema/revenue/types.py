"""GraphQL types of the revenue report (definitions: README, "Revenue analytics")."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.revenue.service import Cohort, CohortCell, Granularity, Movement, Period, Segment
from api.revenue.service import RevenueReport as Report
from schema.scalars import Money

RevenueGranularityEnum = strawberry.enum(Granularity, name="RevenueGranularity")

RATE = "A ratio as a Float (0.05 = 5%); null when its denominator is 0."


@strawberry.type(description="One MRR movement over a period: the MRR moved and the customers it moved.")
class MrrMovement:
    mrr: Money
    customers: int

    @classmethod
    def of(cls, movement: Movement, currency: str) -> MrrMovement:
        return cls(mrr=Money.of(movement.mrr, currency), customers=movement.customers)


@strawberry.type(description="MRR movements; opening MRR + `net` = closing MRR, exactly.")
class MrrMovements:
    new: MrrMovement = strawberry.field(description="Customers whose MRR went from 0 to > 0 for the first time.")
    expansion: MrrMovement = strawberry.field(description="Customers whose MRR rose (from > 0).")
    contraction: MrrMovement = strawberry.field(description="Customers whose MRR fell (to > 0).")
    churned: MrrMovement = strawberry.field(description="Customers whose MRR fell to 0 (their MRR before).")
    reactivation: MrrMovement = strawberry.field(description="Customers back from 0 after having had MRR.")
    net: Money = strawberry.field(description="new + expansion + reactivation - contraction - churned.")


@strawberry.type(description="MRR and paying customers of one plan (product) or one tier at the period's end.")
class RevenueSegment:
    key: str = strawberry.field(description="Product id (plans) or tier name (tiers).")
    name: str
    mrr: Money
    customers: int

    @classmethod
    def of(cls, segment: Segment, currency: str) -> RevenueSegment:
        return cls(key=segment.key, name=segment.name, mrr=Money.of(segment.mrr, currency), customers=segment.customers)


@strawberry.type(description="Charges, refunds and dunning recoveries during the period.")
class PaymentHealth:
    charges_succeeded: int
    charges_failed: int
    charged_amount: Money = strawberry.field(description="Sum of succeeded charges.")
    failed_amount: Money = strawberry.field(description="Sum of failed charge attempts.")
    charge_success_rate: float | None = strawberry.field(description=f"succeeded ÷ (succeeded + failed). {RATE}")
    charge_failure_rate: float | None = strawberry.field(description=f"failed ÷ (succeeded + failed). {RATE}")
    refunds: int
    refunded_amount: Money
    refund_rate: float | None = strawberry.field(description=f"refunded amount ÷ charged amount. {RATE}")
    recovered_invoices: int = strawberry.field(description="Invoices paid after at least one failed attempt.")
    recovered_amount: Money = strawberry.field(description="What those invoices were paid: recovered by dunning.")


@strawberry.type(description="Trials that started, ended and converted during the period.")
class TrialFigures:
    started: int
    ended: int
    converted: int = strawberry.field(description="Trials that ended into ACTIVE or PAST_DUE.")
    conversion_rate: float | None = strawberry.field(description=f"converted ÷ ended. {RATE}")


@strawberry.type(description="Revenue over one period (UTC days `start` inclusive to `end` exclusive).")
class RevenuePeriod:
    start: datetime
    end: datetime
    mrr: Money = strawberry.field(description="MRR at the period's end.")
    arr: Money = strawberry.field(description="12 x MRR.")
    arpu: Money | None = strawberry.field(description="MRR ÷ active customers at the period's end.")
    active_customers: int = strawberry.field(description="Customers with MRR > 0 at the period's end.")
    trialing_customers: int = strawberry.field(description="Customers with a trialing subscription at the end.")
    opening_mrr: Money = strawberry.field(description="MRR at the period's start.")
    opening_customers: int = strawberry.field(description="Active customers at the period's start.")
    movements: MrrMovements
    customer_churn_rate: float | None = strawberry.field(description=f"churned customers ÷ opening customers. {RATE}")
    gross_revenue_churn_rate: float | None = strawberry.field(
        description=f"(churned + contraction MRR) ÷ opening MRR. {RATE}"
    )
    net_revenue_retention: float | None = strawberry.field(
        description=f"(opening + expansion - contraction - churned MRR) ÷ opening MRR. {RATE}"
    )
    ltv: Money | None = strawberry.field(description="ARPU ÷ customer churn rate; null when no customer churned.")
    by_plan: list[RevenueSegment]
    by_tier: list[RevenueSegment]
    payments: PaymentHealth
    trials: TrialFigures

    @classmethod
    def of(cls, p: Period, currency: str) -> RevenuePeriod:
        def money(amount: int) -> Money:
            return Money.of(amount, currency)

        t = p.totals
        return cls(
            start=p.start,
            end=p.end,
            mrr=money(p.closing.mrr),
            arr=money(p.arr),
            arpu=money(p.arpu) if p.arpu is not None else None,
            active_customers=p.closing.customers,
            trialing_customers=p.closing.trialing_customers,
            opening_mrr=money(p.opening.mrr),
            opening_customers=p.opening.customers,
            movements=MrrMovements(
                new=MrrMovement.of(p.movement("new"), currency),
                expansion=MrrMovement.of(p.movement("expansion"), currency),
                contraction=MrrMovement.of(p.movement("contraction"), currency),
                churned=MrrMovement.of(p.movement("churned"), currency),
                reactivation=MrrMovement.of(p.movement("reactivation"), currency),
                net=money(p.net_new_mrr),
            ),
            customer_churn_rate=p.customer_churn_rate,
            gross_revenue_churn_rate=p.gross_revenue_churn_rate,
            net_revenue_retention=p.net_revenue_retention,
            ltv=money(p.ltv) if p.ltv is not None else None,
            by_plan=[RevenueSegment.of(s, currency) for s in p.plans],
            by_tier=[RevenueSegment.of(s, currency) for s in p.tiers],
            payments=PaymentHealth(
                charges_succeeded=t["charges_succeeded"],
                charges_failed=t["charges_failed"],
                charged_amount=money(t["charges_succeeded_amount"]),
                failed_amount=money(t["charges_failed_amount"]),
                charge_success_rate=p.charge_success_rate,
                charge_failure_rate=p.charge_failure_rate,
                refunds=t["refunds"],
                refunded_amount=money(t["refunded_amount"]),
                refund_rate=p.refund_rate,
                recovered_invoices=t["recovered_invoices"],
                recovered_amount=money(t["recovered_amount"]),
            ),
            trials=TrialFigures(
                started=t["trials_started"],
                ended=t["trials_ended"],
                converted=t["trials_converted"],
                conversion_rate=p.trial_conversion_rate,
            ),
        )


@strawberry.type(description="Customers of a signup cohort still paying some months after signing up.")
class CohortRetention:
    months_since_signup: int = strawberry.field(description="0 = the signup month itself.")
    customers: int = strawberry.field(description="Cohort customers with MRR > 0 at that month's end.")
    rate: float | None = strawberry.field(description=f"customers ÷ cohort size. {RATE}")
    mrr: Money = strawberry.field(description="Their MRR at that month's end.")

    @classmethod
    def of(cls, cell: CohortCell, currency: str) -> CohortRetention:
        return cls(
            months_since_signup=cell.months_since_signup,
            customers=cell.customers,
            rate=cell.rate,
            mrr=Money.of(cell.mrr, currency),
        )


@strawberry.type(description="Customers who signed up in one month (billing in the report's currency).")
class RevenueCohort:
    month: str = strawberry.field(description="Signup month, YYYY-MM (UTC).")
    customers: int = strawberry.field(description="Cohort size: customers created that month.")
    retention: list[CohortRetention]

    @classmethod
    def of(cls, cohort: Cohort, currency: str) -> RevenueCohort:
        return cls(
            month=cohort.month,
            customers=cohort.customers,
            retention=[CohortRetention.of(c, currency) for c in cohort.retention],
        )


@strawberry.type(description="Revenue analytics over a range of UTC days, in one currency.")
class RevenueReport:
    currency: str
    granularity: RevenueGranularityEnum  # type: ignore[valid-type]
    start: datetime = strawberry.field(description="First day covered, 00:00 UTC.")
    end: datetime = strawberry.field(description="The day after the last day covered, 00:00 UTC (exclusive).")
    as_of: datetime = strawberry.field(
        description="When the oldest figure used was computed (stored days: their snapshot time; today: now)."
    )
    summary: RevenuePeriod = strawberry.field(description="The whole range as one period.")
    series: list[RevenuePeriod] = strawberry.field(description="One entry per period (day, ISO week or month).")
    cohorts: list[RevenueCohort] = strawberry.field(description="Signup-month cohorts of the range, by month.")

    @classmethod
    def of(cls, report: Report) -> RevenueReport:
        c = report.currency
        return cls(
            currency=c,
            granularity=report.granularity,
            start=report.start,
            end=report.end,
            as_of=report.as_of,
            summary=RevenuePeriod.of(report.summary, c),
            series=[RevenuePeriod.of(p, c) for p in report.series],
            cohorts=[RevenueCohort.of(k, c) for k in report.cohorts],
        )
