"""StripeGateway: every Stripe request Ledgerline makes, typed by the SDK's params.

Async methods of `stripe.StripeClient` with explicit retries and timeout. Every write takes an
idempotency key (callers derive it from the mutation's idempotencyKey and the step), so a retry
after a lost answer or a failed local commit gets Stripe's first answer back instead of a second
object. Failures are translated by `api.stripe.errors.translate`."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TypeVar

import stripe
from stripe.params import (
    ChargeListParams,
    CouponCreateParams,
    CustomerCreateBalanceTransactionParams,
    CustomerCreateParams,
    CustomerUpdateParams,
    InvoiceCreateParams,
    InvoiceCreatePreviewParams,
    InvoiceItemCreateParams,
    InvoiceListParams,
    InvoicePaymentListParams,
    InvoicePayParams,
    PaymentMethodAttachParams,
    PriceCreateParams,
    ProductCreateParams,
    PromotionCodeCreateParams,
    RefundCreateParams,
    SubscriptionCancelParams,
    SubscriptionCreateParams,
    SubscriptionListParams,
    SubscriptionResumeParams,
    SubscriptionRetrieveParams,
    SubscriptionUpdateParams,
)
from stripe.params.billing import MeterCreateParams, MeterEventCreateParams

from api.errors import ProviderError, Rejected
from api.settings import Settings
from api.stripe.errors import translate

T = TypeVar("T")
S = TypeVar("S", bound=stripe.StripeObject)
Fields = Mapping[str, str]

# the discounts' coupon terms come back with the subscription, so its MRR can take them off
SUBSCRIPTION_EXPAND = ("discounts.source.coupon",)
LOCAL_TEST_KEY = "sk_test_ledgerline_local"  # any sk_test_ key works with the local emulator


class StripeGateway:
    def __init__(self, settings: Settings) -> None:
        api_key = settings.stripe_secret_key or (LOCAL_TEST_KEY if settings.stripe_api_base else None)
        self._http: stripe.HTTPXClient | None = None
        self._client: stripe.StripeClient | None = None
        if api_key is None:
            return  # not configured: every call raises ProviderError
        self._http = stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else None,
            max_network_retries=settings.stripe_max_network_retries,
            http_client=self._http,
        )

    @property
    def v1(self) -> stripe.V1Services:
        if self._client is None:
            raise ProviderError(
                "Stripe is not configured: set STRIPE_SECRET_KEY (or STRIPE_API_BASE), nothing was changed"
            )
        return self._client.v1

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close_async()  # type: ignore[no-untyped-call]

    @staticmethod
    async def _call(request: Awaitable[T], fields: Fields | None) -> T:
        try:
            return await request
        except stripe.StripeError as exc:
            raise translate(exc, fields) from exc

    # --- customers ------------------------------------------------------------------------------

    async def create_customer(
        self, params: CustomerCreateParams, *, idempotency_key: str, fields: Fields | None = None
    ) -> stripe.Customer:
        return await self._call(self.v1.customers.create_async(params, {"idempotency_key": idempotency_key}), fields)

    async def update_customer(
        self, customer_id: str, params: CustomerUpdateParams, *, idempotency_key: str, fields: Fields | None = None
    ) -> stripe.Customer:
        return await self._call(
            self.v1.customers.update_async(customer_id, params, {"idempotency_key": idempotency_key}), fields
        )

    async def attach_payment_method(
        self, payment_method: str, customer_id: str, *, idempotency_key: str, fields: Fields | None = None
    ) -> stripe.PaymentMethod:
        params: PaymentMethodAttachParams = {"customer": customer_id}
        return await self._call(
            self.v1.payment_methods.attach_async(payment_method, params, {"idempotency_key": idempotency_key}),
            fields,
        )

    # --- billing meters -------------------------------------------------------------------------

    async def create_billing_meter(self, params: MeterCreateParams, *, idempotency_key: str) -> stripe.billing.Meter:
        return await self._call(
            self.v1.billing.meters.create_async(params, {"idempotency_key": idempotency_key}), {"event_name": "key"}
        )

    async def create_meter_event(self, params: MeterEventCreateParams) -> stripe.billing.MeterEvent:
        """Stripe dedups on the event's `identifier` (not on an idempotency key)."""
        return await self._call(self.v1.billing.meter_events.create_async(params), None)

    # --- catalog --------------------------------------------------------------------------------

    async def create_product(self, params: ProductCreateParams, *, idempotency_key: str) -> stripe.Product:
        return await self._call(self.v1.products.create_async(params, {"idempotency_key": idempotency_key}), None)

    async def create_price(self, params: PriceCreateParams, *, idempotency_key: str) -> stripe.Price:
        return await self._call(self.v1.prices.create_async(params, {"idempotency_key": idempotency_key}), None)

    # --- subscriptions --------------------------------------------------------------------------

    async def create_subscription(
        self, params: SubscriptionCreateParams, *, idempotency_key: str, fields: Fields | None = None
    ) -> stripe.Subscription:
        params = params.copy()
        params["expand"] = [*params.get("expand", []), *SUBSCRIPTION_EXPAND]
        return await self._call(
            self.v1.subscriptions.create_async(params, {"idempotency_key": idempotency_key}), fields
        )

    async def retrieve_subscription(
        self, subscription_id: str, params: SubscriptionRetrieveParams | None = None
    ) -> stripe.Subscription:
        return await self._call(self.v1.subscriptions.retrieve_async(subscription_id, params), None)

    async def update_subscription(
        self,
        subscription_id: str,
        params: SubscriptionUpdateParams,
        *,
        idempotency_key: str,
        fields: Fields | None = None,
    ) -> stripe.Subscription:
        params = params.copy()
        params["expand"] = [*params.get("expand", []), *SUBSCRIPTION_EXPAND]
        return await self._call(
            self.v1.subscriptions.update_async(subscription_id, params, {"idempotency_key": idempotency_key}),
            fields,
        )

    async def cancel_subscription(
        self,
        subscription_id: str,
        params: SubscriptionCancelParams,
        *,
        idempotency_key: str,
        fields: Fields | None = None,
    ) -> stripe.Subscription:
        """Cancel now. Cancelling is not idempotent on Stripe (a second DELETE is refused), so a
        retry that finds the subscription already canceled returns it as the answer."""
        try:
            return await self._call(
                self.v1.subscriptions.cancel_async(subscription_id, params, {"idempotency_key": idempotency_key}),
                fields,
            )
        except Rejected:
            current = await self.retrieve_subscription(subscription_id)
            if current.status == "canceled":
                return current
            raise

    async def resume_subscription(
        self,
        subscription_id: str,
        params: SubscriptionResumeParams,
        *,
        idempotency_key: str,
        fields: Fields | None = None,
    ) -> stripe.Subscription:
        return await self._call(
            self.v1.subscriptions.resume_async(subscription_id, params, {"idempotency_key": idempotency_key}),
            fields,
        )

    # --- invoices -------------------------------------------------------------------------------

    async def preview_invoice(
        self, params: InvoiceCreatePreviewParams, *, fields: Fields | None = None
    ) -> stripe.Invoice:
        """The invoice a change would produce (no side effect on Stripe)."""
        return await self._call(self.v1.invoices.create_preview_async(params), fields)

    async def retrieve_invoice(self, invoice_id: str) -> stripe.Invoice:
        return await self._call(self.v1.invoices.retrieve_async(invoice_id), None)

    # --- invoice writes, payments, refunds, credits (invoice mutations) -----------------------------

    async def create_invoice(
        self, params: InvoiceCreateParams, *, idempotency_key: str, fields: Fields | None = None
    ) -> stripe.Invoice:
        return await self._call(self.v1.invoices.create_async(params, {"idempotency_key": idempotency_key}), fields)

    async def create_invoice_item(
        self, params: InvoiceItemCreateParams, *, idempotency_key: str, fields: Fields | None = None
    ) -> stripe.InvoiceItem:
        return await self._call(
            self.v1.invoice_items.create_async(params, {"idempotency_key": idempotency_key}), fields
        )

    async def finalize_invoice(self, invoice_id: str, *, idempotency_key: str) -> stripe.Invoice:
        return await self._call(
            self.v1.invoices.finalize_invoice_async(invoice_id, {}, {"idempotency_key": idempotency_key}), None
        )

    async def send_invoice(self, invoice_id: str, *, idempotency_key: str) -> stripe.Invoice:
        return await self._call(
            self.v1.invoices.send_invoice_async(invoice_id, {}, {"idempotency_key": idempotency_key}), None
        )

    async def void_invoice(self, invoice_id: str, *, idempotency_key: str) -> stripe.Invoice:
        return await self._call(
            self.v1.invoices.void_invoice_async(invoice_id, {}, {"idempotency_key": idempotency_key}), None
        )

    async def mark_invoice_uncollectible(self, invoice_id: str, *, idempotency_key: str) -> stripe.Invoice:
        return await self._call(
            self.v1.invoices.mark_uncollectible_async(invoice_id, {}, {"idempotency_key": idempotency_key}), None
        )

    async def pay_invoice(
        self, invoice_id: str, params: InvoicePayParams, *, idempotency_key: str, fields: Fields | None = None
    ) -> stripe.Invoice:
        return await self._call(
            self.v1.invoices.pay_async(invoice_id, params, {"idempotency_key": idempotency_key}), fields
        )

    async def invoice_lines(self, invoice: stripe.Invoice) -> list[stripe.InvoiceLineItem]:
        """Every line of the invoice (the embedded list holds the first page only)."""
        lines = list(invoice.lines.data)
        if not invoice.lines.has_more:
            return lines
        assert invoice.id is not None
        page = await self._call(self.v1.invoices.line_items.list_async(invoice.id, {"limit": 100}), None)
        lines = []
        async for line in page.auto_paging_iter():
            lines.append(line)
        return lines

    async def paid_invoice_payments(self, invoice_id: str) -> list[stripe.InvoicePayment]:
        page = await self._call(
            self.v1.invoice_payments.list_async({"invoice": invoice_id, "status": "paid", "limit": 100}), None
        )
        return list(page.data)

    async def create_refund(
        self, params: RefundCreateParams, *, idempotency_key: str, fields: Fields | None = None
    ) -> stripe.Refund:
        return await self._call(self.v1.refunds.create_async(params, {"idempotency_key": idempotency_key}), fields)

    async def create_balance_transaction(
        self,
        customer_id: str,
        params: CustomerCreateBalanceTransactionParams,
        *,
        idempotency_key: str,
        fields: Fields | None = None,
    ) -> stripe.CustomerBalanceTransaction:
        return await self._call(
            self.v1.customers.balance_transactions.create_async(
                customer_id, params, {"idempotency_key": idempotency_key}
            ),
            fields,
        )

    # --- coupons and promotion codes -----------------------------------------------------------

    async def create_coupon(
        self, params: CouponCreateParams, *, idempotency_key: str, fields: Fields | None = None
    ) -> stripe.Coupon:
        return await self._call(self.v1.coupons.create_async(params, {"idempotency_key": idempotency_key}), fields)

    async def create_promotion_code(
        self, params: PromotionCodeCreateParams, *, idempotency_key: str, fields: Fields | None = None
    ) -> stripe.PromotionCode:
        return await self._call(
            self.v1.promotion_codes.create_async(params, {"idempotency_key": idempotency_key}), fields
        )

    async def find_promotion_code(self, code: str) -> stripe.PromotionCode | None:
        """The active promotion code with this customer-facing code, if any."""
        page = await self._call(self.v1.promotion_codes.list_async({"code": code, "active": True, "limit": 1}), None)
        return page.data[0] if page.data else None

    # --- reconciliation reads (every page: auto-pagination with limit / starting_after) ----------

    @staticmethod
    async def _every(request: Awaitable[stripe.ListObject[S]]) -> list[S]:
        page = await StripeGateway._call(request, None)
        found: list[S] = []
        try:
            async for item in page.auto_paging_iter():
                found.append(item)
        except stripe.StripeError as exc:
            raise translate(exc, None) from exc
        return found

    @staticmethod
    async def _unless_missing(request: Awaitable[T]) -> T | None:
        """The object, or None when Stripe answers 404 (unknown id)."""
        try:
            return await request
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise translate(exc, None) from exc
        except stripe.StripeError as exc:
            raise translate(exc, None) from exc

    async def find_customer(self, customer_id: str) -> stripe.Customer | None:
        """None when Stripe does not know the customer or it was deleted."""
        found = await self._unless_missing(self.v1.customers.retrieve_async(customer_id))
        return None if found is None or getattr(found, "deleted", False) else found

    async def find_subscription(self, subscription_id: str) -> stripe.Subscription | None:
        return await self._unless_missing(self.v1.subscriptions.retrieve_async(subscription_id))

    async def find_invoice(self, invoice_id: str) -> stripe.Invoice | None:
        return await self._unless_missing(self.v1.invoices.retrieve_async(invoice_id))

    async def list_customers(self) -> list[stripe.Customer]:
        return await self._every(self.v1.customers.list_async({"limit": 100}))

    async def list_subscriptions(self, customer_id: str | None = None) -> list[stripe.Subscription]:
        params: SubscriptionListParams = {"limit": 100, "status": "all"}
        if customer_id is not None:
            params["customer"] = customer_id
        return await self._every(self.v1.subscriptions.list_async(params))

    async def list_invoices(self, customer_id: str | None = None) -> list[stripe.Invoice]:
        params: InvoiceListParams = {"limit": 100}
        if customer_id is not None:
            params["customer"] = customer_id
        return await self._every(self.v1.invoices.list_async(params))

    async def list_paid_invoice_payments(self, invoice_id: str | None = None) -> list[stripe.InvoicePayment]:
        params: InvoicePaymentListParams = {"limit": 100, "status": "paid"}
        if invoice_id is not None:
            params["invoice"] = invoice_id
        return await self._every(self.v1.invoice_payments.list_async(params))

    async def list_charges(self, customer_id: str | None = None) -> list[stripe.Charge]:
        params: ChargeListParams = {"limit": 100}
        if customer_id is not None:
            params["customer"] = customer_id
        return await self._every(self.v1.charges.list_async(params))
