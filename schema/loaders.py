"""Per-request DataLoaders. Batches run on the request's driver connection (api.common.reads),
which serialises them: graphql-core resolves sibling fields concurrently. Usage totals, computed
by the metering service with a session, open a short session of their own per batch."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from api.catalog.models import Price, Product
from api.catalog.service import prices_by_ids, products_by_ids
from api.common.pagination import Page, PageArgs
from api.common.reads import DriverReads
from api.customer.models import Customer
from api.customer.service import customers_by_ids
from api.health.service import CurrentHealth, health_by_customer_ids
from api.invoice.models import Invoice, InvoiceLine, InvoiceStatus, Payment, Refund
from api.invoice.service import (
    invoice_pages_for_customers,
    invoices_by_ids,
    latest_invoice_by_customer_ids,
    lines_by_invoice_ids,
    payments_by_invoice_ids,
    refunds_by_invoice_ids,
)
from api.subscription.models import Subscription, SubscriptionItem
from api.subscription.service import (
    items_by_subscription_ids,
    subscriptions_by_customer_ids,
    subscriptions_by_ids,
)
from api.usage.service import (
    Granularity,
    QuotaStatus,
    UsageSeries,
    quota_status_for_customers,
    series_for_customers,
)

K = TypeVar("K")
V = TypeVar("V")
Fetch = Callable[[DriverReads, Sequence[K]], Awaitable[Mapping[K, V]]]
SessionFetch = Callable[[AsyncSession, Sequence[K]], Awaitable[Mapping[K, V]]]


class Loaders:
    def __init__(self, reads: DriverReads, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._reads = reads
        self._session_factory = session_factory
        self.customer: DataLoader[uuid.UUID, Customer | None] = self._one(customers_by_ids)
        self.subscription: DataLoader[uuid.UUID, Subscription | None] = self._one(subscriptions_by_ids)
        self.invoice: DataLoader[uuid.UUID, Invoice | None] = self._one(invoices_by_ids)
        self.price: DataLoader[uuid.UUID, Price | None] = self._one(prices_by_ids)
        self.product: DataLoader[uuid.UUID, Product | None] = self._one(products_by_ids)
        self.latest_invoice: DataLoader[uuid.UUID, Invoice | None] = self._one(latest_invoice_by_customer_ids)
        self.health_of_customer: DataLoader[uuid.UUID, CurrentHealth | None] = self._one(health_by_customer_ids)
        self.subscriptions_of_customer: DataLoader[uuid.UUID, list[Subscription]] = self._many(
            subscriptions_by_customer_ids
        )
        self.items_of_subscription: DataLoader[uuid.UUID, list[SubscriptionItem]] = self._many(
            items_by_subscription_ids
        )
        self.lines_of_invoice: DataLoader[uuid.UUID, list[InvoiceLine]] = self._many(lines_by_invoice_ids)
        self.payments_of_invoice: DataLoader[uuid.UUID, list[Payment]] = self._many(payments_by_invoice_ids)
        self.refunds_of_invoice: DataLoader[uuid.UUID, list[Refund]] = self._many(refunds_by_invoice_ids)
        # loaders whose batch depends on field arguments: one per distinct set of arguments
        self._parametrised: dict[Hashable, DataLoader[Any, Any]] = {}

    def _load(self, fetch: Fetch[K, V], missing: Callable[[], V]) -> DataLoader[K, V]:
        async def load(keys: list[K]) -> list[V]:
            found = await fetch(self._reads, keys)
            return [found[key] if key in found else missing() for key in keys]

        return DataLoader(load_fn=load)

    def _in_session(self, fetch: SessionFetch[K, V]) -> Fetch[K, V]:
        async def in_session(_: DriverReads, keys: Sequence[K]) -> Mapping[K, V]:
            async with self._session_factory() as session:
                return await fetch(session, keys)

        return in_session

    def _one(self, fetch: Fetch[K, V]) -> DataLoader[K, V | None]:
        return self._load(fetch, lambda: None)

    def _many(self, fetch: Fetch[K, list[V]]) -> DataLoader[K, list[V]]:
        return self._load(fetch, list)

    def _parametrised_loader(self, key: Hashable, fetch: Fetch[K, V], missing: Callable[[], V]) -> DataLoader[K, V]:
        loader = self._parametrised.get(key)
        if loader is None:
            loader = self._parametrised[key] = self._load(fetch, missing)
        return loader

    def invoice_page_of_customer(
        self, statuses: tuple[InvoiceStatus, ...], page: PageArgs
    ) -> DataLoader[uuid.UUID, Page[Invoice]]:
        async def fetch(reads: DriverReads, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Page[Invoice]]:
            return await invoice_pages_for_customers(reads, ids, statuses, page)

        empty = Page[Invoice]([], [], False, page.after is not None)
        return self._parametrised_loader(("invoices", statuses, page), fetch, lambda: empty)

    def usage_of_customer(
        self, meter_key: str | None, span: tuple[datetime, datetime], granularity: Granularity
    ) -> DataLoader[uuid.UUID, list[UsageSeries]]:
        async def fetch(session: AsyncSession, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, list[UsageSeries]]:
            return await series_for_customers(session, ids, meter_key, span, granularity)

        return self._parametrised_loader(("usage", meter_key, span, granularity), self._in_session(fetch), list)

    def quota_usage_of_customer(self) -> DataLoader[uuid.UUID, list[QuotaStatus]]:
        return self._parametrised_loader(("quota_usage",), self._in_session(quota_status_for_customers), list)
