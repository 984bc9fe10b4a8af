"""Builders for test rows: explicit values where a test asserts on them, sensible defaults elsewhere."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Price, PriceInterval, Product, UsageType
from api.customer.models import Customer, CustomerStatus, CustomerTier
from api.dunning.models import DunningCase, DunningCaseStatus
from api.invoice.models import Invoice, InvoiceLine, InvoiceStatus
from api.subscription.models import Subscription, SubscriptionItem, SubscriptionStatus
from api.usage.models import Meter, MeterAggregation, UsageEvent

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
_numbers = itertools.count(1)


class Builder:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _add(self, row: Any) -> Any:
        self.session.add(row)
        await self.session.flush()
        return row

    async def product_and_price(self, unit_amount: int = 9900, currency: str = "usd", **kw: Any) -> Price:
        product = await self._add(Product(name=kw.pop("product_name", "Pro")))
        return await self._add(  # type: ignore[no-any-return]
            Price(
                product_id=product.id,
                unit_amount=unit_amount,
                currency=currency,
                interval=kw.pop("interval", PriceInterval.MONTH),
                usage_type=kw.pop("usage_type", UsageType.LICENSED),
                **kw,
            )
        )

    async def customer(self, name: str = "Acme", **kw: Any) -> Customer:
        n = next(_numbers)
        values: dict[str, Any] = {
            "email": f"billing{n}@{name.lower().replace(' ', '')}.test",
            "tier": CustomerTier.PRO,
            "status": CustomerStatus.ACTIVE,
            "created_at": BASE_TIME + timedelta(hours=n),
            "address_city": "Lyon",
            "address_country": "FR",
        }
        values.update(kw)
        return await self._add(Customer(name=name, **values))  # type: ignore[no-any-return]

    async def subscription(self, customer: Customer, price: Price, quantity: int = 1, **kw: Any) -> Subscription:
        values: dict[str, Any] = {
            "status": SubscriptionStatus.ACTIVE,
            "currency": price.currency,
            "current_period_start": BASE_TIME,
            "current_period_end": BASE_TIME + timedelta(days=31),
        }
        values.update(kw)
        sub = await self._add(Subscription(customer_id=customer.id, **values))
        await self._add(SubscriptionItem(subscription_id=sub.id, price_id=price.id, quantity=quantity))
        return sub  # type: ignore[no-any-return]

    async def invoice(self, customer: Customer, amount: int = 9900, **kw: Any) -> Invoice:
        n = next(_numbers)
        values: dict[str, Any] = {
            "status": InvoiceStatus.PAID,
            "currency": "usd",
            "number": f"T-{n:06d}",
            "subtotal": amount,
            "total": amount,
            "amount_due": amount,
            "amount_paid": amount,
            "amount_remaining": 0,
            "created_at": BASE_TIME + timedelta(days=n),
        }
        values.update(kw)
        invoice = await self._add(Invoice(customer_id=customer.id, **values))
        await self._add(
            InvoiceLine(invoice_id=invoice.id, description="Pro seat", amount=amount, currency=values["currency"])
        )
        return invoice  # type: ignore[no-any-return]

    async def meter(self, key: str = "api_calls", aggregation: MeterAggregation = MeterAggregation.SUM) -> Meter:
        return await self._add(Meter(key=key, name=key.replace("_", " ").title(), aggregation=aggregation))  # type: ignore[no-any-return]

    async def usage(self, customer: Customer, meter: Meter, value: str, at: datetime) -> UsageEvent:
        return await self._add(  # type: ignore[no-any-return]
            UsageEvent(
                customer_id=customer.id,
                meter_id=meter.id,
                value=value,
                occurred_at=at,
                idempotency_key=uuid.uuid4().hex,
            )
        )

    async def dunning_case(self, invoice: Invoice, status: DunningCaseStatus = DunningCaseStatus.OPEN) -> DunningCase:
        """A case without steps (the webhook path builds real ones; see tests/test_dunning.py)."""
        return await self._add(  # type: ignore[no-any-return]
            DunningCase(
                invoice_id=invoice.id,
                customer_id=invoice.customer_id,
                status=status,
                tier=CustomerTier.PRO,
                opened_at=BASE_TIME,
                paused_at=BASE_TIME if status is DunningCaseStatus.PAUSED else None,
            )
        )
