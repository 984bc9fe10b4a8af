from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import strawberry

from api.auth.permissions import Capability
from api.common.pagination import PageArgs, check_first
from api.customer.models import Customer as CustomerModel
from api.customer.models import CustomerStatus, CustomerTier
from api.db import utcnow
from api.invoice.models import InvoiceStatus
from api.invoice.service import InvoiceFilter, count_invoices
from api.usage.service import Granularity, usage_span
from schema.context import Info
from schema.health.types import CustomerHealth
from schema.invoice.types import Invoice, InvoiceStatusEnum
from schema.permissions import guarded
from schema.scalars import AfterArg, Connection, DateRangeInput, FirstArg, Node, date_range, to_connection, to_global_id
from schema.subscription.types import Subscription
from schema.usage.types import GranularityEnum, QuotaUsage, UsageSeries

CustomerTierEnum = strawberry.enum(CustomerTier, name="CustomerTier")
CustomerStatusEnum = strawberry.enum(CustomerStatus, name="CustomerStatus")


@strawberry.type
class Address:
    line1: str | None
    line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2.")


@strawberry.type(description="A card on file, as Stripe describes it (never the full number).")
class PaymentMethod:
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None


@strawberry.type(description="A customer account: who pays, on which tier, in which state.")
class Customer(Node):
    name: str
    email: str | None = guarded(Capability.CUSTOMER_PII_READ)
    phone: str | None = guarded(Capability.CUSTOMER_PII_READ)
    address: Address | None = guarded(Capability.CUSTOMER_PII_READ)
    tax_id: str | None = guarded(Capability.CUSTOMER_PII_READ)
    payment_method: PaymentMethod | None = guarded(
        Capability.PAYMENT_METHOD_READ, description="The default payment method (card brand, last 4, expiry)."
    )
    tier: CustomerTierEnum  # type: ignore[valid-type]
    industry: str | None
    status: CustomerStatusEnum  # type: ignore[valid-type]
    internal_team: bool
    currency: str
    external_id: str | None
    stripe_customer_id: str | None
    suspended_reason: str | None
    created_at: datetime
    updated_at: datetime
    local_id: strawberry.Private[uuid.UUID]

    @guarded(Capability.SUBSCRIPTION_READ, description="All of the customer's subscriptions, newest first.")
    async def subscriptions(self, info: Info) -> list[Subscription] | None:
        models = await info.context.loaders.subscriptions_of_customer.load(self.local_id)
        return [Subscription.from_model(m) for m in models]

    @guarded(Capability.INVOICE_READ, description="The customer's invoices, newest first.")
    async def invoices(
        self,
        info: Info,
        first: FirstArg = None,
        after: AfterArg = None,
        status: list[InvoiceStatusEnum] | None = None,  # type: ignore[valid-type]
    ) -> Connection[Invoice] | None:
        settings = info.context.settings
        page = PageArgs(
            first=check_first(first, default=settings.default_page_size, maximum=settings.max_page_size),
            after=after,
        )
        statuses: tuple[InvoiceStatus, ...] = tuple(status or ())
        result = await info.context.loaders.invoice_page_of_customer(statuses, page).load(self.local_id)

        async def count() -> int:
            async with info.context.read_session() as session:
                return await count_invoices(session, InvoiceFilter(statuses=statuses, customer_id=self.local_id))

        return to_connection(result, Invoice.from_model, count)

    @guarded(Capability.INVOICE_READ, description="The most recent invoice, if any.")
    async def latest_invoice(self, info: Info) -> Invoice | None:
        model = await info.context.loaders.latest_invoice.load(self.local_id)
        return Invoice.from_model(model) if model else None

    @guarded(
        Capability.USAGE_READ,
        description="Usage per meter (all meters unless `meter` is given) over [from, to) — default the last 30 "
        "days — as a series of `granularity` points plus the total, with each meter's aggregation. Counted in "
        "whole UTC hours; events not rolled up yet are included.",
    )
    async def usage(
        self,
        info: Info,
        meter: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        granularity: GranularityEnum = Granularity.DAY,  # type: ignore[valid-type]
    ) -> list[UsageSeries] | None:
        date_range(DateRangeInput(from_=from_, to=to), "usage")  # `from` after `to` → an error naming it
        now = utcnow()
        span = usage_span(from_, to, granularity, now)
        series = await info.context.loaders.usage_of_customer(meter, span, granularity).load(self.local_id)
        return [UsageSeries.of(s, granularity, now) for s in series]

    @guarded(
        Capability.USAGE_READ,
        description="Usage so far this billing period against each quota of the customer's plan.",
    )
    async def quota_usage(self, info: Info) -> list[QuotaUsage] | None:
        statuses = await info.context.loaders.quota_usage_of_customer().load(self.local_id)
        return [QuotaUsage.of(s) for s in statuses]

    @guarded(
        Capability.CUSTOMER_READ,
        description="Health score (0 to 100), churn-risk band, components and trend, as last computed (daily); "
        "null until first computed. Definitions: README, Customer health.",
    )
    async def health(self, info: Info) -> CustomerHealth | None:
        current = await info.context.loaders.health_of_customer.load(self.local_id)
        return CustomerHealth.of(current) if current else None

    @classmethod
    def from_model(cls, m: CustomerModel) -> Customer:
        has_address = any((m.address_line1, m.address_city, m.address_postal_code, m.address_country))
        return cls(
            id=to_global_id("Customer", m.id),
            name=m.name,
            email=m.email,
            phone=m.phone,
            address=Address(
                line1=m.address_line1,
                line2=m.address_line2,
                city=m.address_city,
                state=m.address_state,
                postal_code=m.address_postal_code,
                country=m.address_country,
            )
            if has_address
            else None,
            tax_id=m.tax_id,
            payment_method=PaymentMethod(
                brand=m.payment_method_brand,
                last4=m.payment_method_last4,
                exp_month=m.payment_method_exp_month,
                exp_year=m.payment_method_exp_year,
            )
            if m.payment_method_brand and m.payment_method_last4
            else None,
            tier=m.tier,
            industry=m.industry,
            status=m.status,
            internal_team=m.internal_team,
            currency=m.currency,
            external_id=m.external_id,
            stripe_customer_id=m.stripe_customer_id,
            suspended_reason=m.suspended_reason,
            created_at=m.created_at,
            updated_at=m.updated_at,
            local_id=m.id,
        )
