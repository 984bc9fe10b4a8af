"""The revenue export (`/exports/revenue.csv|json`, `ledgerline export revenue`): the series of
the GraphQL `revenue(range, currency, granularity)` report, one row per period with its figures
(definitions: README, "Revenue analytics"). Its `asOf` is the report's: when the oldest figure
used was computed. Plan and tier breakdowns and cohorts stay in GraphQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.permissions import Capability
from api.common.daterange import DateRange
from api.common.money import minor_to_decimal
from api.errors import Invalid
from api.export.dataset import Column, Dataset, Param, Rows, Values
from api.export.params import Params
from api.revenue.service import Granularity, Period, check_currency, report_days, revenue_report

MOVEMENTS = ("new", "expansion", "contraction", "churned", "reactivation")
# the report's errors name GraphQL arguments; the export's parameters are named differently
PARAM_OF_ARGUMENT = {"range": "from", "range.from": "from"}


@dataclass(frozen=True, slots=True)
class RevenueExportFilter:
    window: DateRange
    currency: str
    granularity: Granularity


@dataclass(frozen=True, slots=True)
class PeriodRow:
    period: Period
    currency: str


def _figure(name: str, value: Callable[[Period], Any]) -> Column[PeriodRow]:
    return Column(name, lambda row: value(row.period))


def _money(name: str, amount: Callable[[Period], int | None]) -> Column[PeriodRow]:
    def value(row: PeriodRow) -> Decimal | None:
        minor = amount(row.period)
        return None if minor is None else minor_to_decimal(minor, row.currency)

    return Column(name, value)


def _total(name: str) -> Column[PeriodRow]:
    return _figure(name, lambda p: p.totals[name])


def _total_money(name: str, key: str) -> Column[PeriodRow]:
    return _money(name, lambda p: p.totals[key])


def _movement_columns(movement: str) -> list[Column[PeriodRow]]:
    return [_total_money(f"{movement}_mrr", f"{movement}_mrr"), _total(f"{movement}_customers")]


COLUMNS: list[Column[PeriodRow]] = [
    _figure("period_start", lambda p: p.start),
    _figure("period_end", lambda p: p.end),
    Column("currency", lambda row: row.currency),
    _money("mrr", lambda p: p.closing.mrr),
    _money("arr", lambda p: p.arr),
    _money("arpu", lambda p: p.arpu),
    _figure("active_customers", lambda p: p.closing.customers),
    _figure("trialing_customers", lambda p: p.closing.trialing_customers),
    _money("opening_mrr", lambda p: p.opening.mrr),
    _figure("opening_customers", lambda p: p.opening.customers),
    *(column for movement in MOVEMENTS for column in _movement_columns(movement)),
    _money("net_new_mrr", lambda p: p.net_new_mrr),
    _figure("customer_churn_rate", lambda p: p.customer_churn_rate),
    _figure("gross_revenue_churn_rate", lambda p: p.gross_revenue_churn_rate),
    _figure("net_revenue_retention", lambda p: p.net_revenue_retention),
    _money("ltv", lambda p: p.ltv),
    _total("charges_succeeded"),
    _total("charges_failed"),
    _total_money("charged_amount", "charges_succeeded_amount"),
    _total_money("failed_amount", "charges_failed_amount"),
    _figure("charge_success_rate", lambda p: p.charge_success_rate),
    _figure("charge_failure_rate", lambda p: p.charge_failure_rate),
    _total("refunds"),
    _total_money("refunded_amount", "refunded_amount"),
    _figure("refund_rate", lambda p: p.refund_rate),
    _total("recovered_invoices"),
    _total_money("recovered_amount", "recovered_amount"),
    _total("trials_started"),
    _total("trials_ended"),
    _total("trials_converted"),
    _figure("trial_conversion_rate", lambda p: p.trial_conversion_rate),
]

PARAMS = [
    Param("currency", "Required: the ISO 4217 code of the report, e.g. `usd` (amounts are never converted)."),
    Param("granularity", "One row per DAY, WEEK (ISO) or MONTH (default)."),
    Param("from", "First UTC day covered (required unless `preset`)."),
    Param("to", "End of the range, exclusive (default: through today)."),
    Param("preset", "A preset range (LAST_12_MONTHS ...) instead of from/to."),
]


def parse_filter(params: Params) -> RevenueExportFilter:
    currency = params.text("currency")
    if currency is None:
        raise Invalid("`currency` is required, e.g. `usd`", field="currency")
    window = params.date_range(preset="preset")
    if window.start is None:
        raise Invalid("`from` or `preset` is required", field="from")
    try:
        report_days(window, datetime.now(UTC))  # the range's own checks, before any row is read
        code = check_currency(currency)
    except Invalid as exc:
        raise Invalid(exc.message, field=PARAM_OF_ARGUMENT.get(exc.field or "", exc.field)) from None
    granularity = params.choice("granularity", Granularity) or Granularity.MONTH
    return RevenueExportFilter(window, code, granularity)


class RevenueDataset(Dataset[RevenueExportFilter, PeriodRow]):
    async def open(
        self,
        session: AsyncSession,
        flt: RevenueExportFilter,
        columns: Sequence[Column[PeriodRow]],
        capabilities: frozenset[Capability],
        snapshot_at: datetime,
    ) -> Rows:
        report = await revenue_report(session, flt.window, flt.granularity, flt.currency, now=snapshot_at)
        rows = [PeriodRow(period, report.currency) for period in report.series]

        async def count() -> int:
            return len(rows)

        async def batches() -> AsyncIterator[list[Values]]:
            yield [tuple(column.value(row) for column in columns) for row in rows]  # ≤ 3 years of days

        return Rows(report.as_of, count, batches())


REVENUE = RevenueDataset(
    name="revenue",
    noun="revenue analytics",
    read=[Capability.REVENUE_READ],
    params=PARAMS,
    parse=parse_filter,
    columns=COLUMNS,
)
