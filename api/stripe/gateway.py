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
    CustomerCreateParams,
    CustomerUpdateParams,
    InvoiceCreatePreviewParams,
    PaymentMethodAttachParams,
    PriceCreateParams,
    ProductCreateParams,
    SubscriptionCancelParams,
    SubscriptionCreateParams,
    SubscriptionResumeParams,
    SubscriptionRetrieveParams,
    SubscriptionUpdateParams,
)

from api.errors import ProviderError, Rejected
from api.settings import Settings
from api.stripe.errors import translate

T = TypeVar("T")
Fields = Mapping[str, str]

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

    # --- catalog --------------------------------------------------------------------------------

    async def create_product(self, params: ProductCreateParams, *, idempotency_key: str) -> stripe.Product:
        return await self._call(self.v1.products.create_async(params, {"idempotency_key": idempotency_key}), None)

    async def create_price(self, params: PriceCreateParams, *, idempotency_key: str) -> stripe.Price:
        return await self._call(self.v1.prices.create_async(params, {"idempotency_key": idempotency_key}), None)

    # --- subscriptions --------------------------------------------------------------------------

    async def create_subscription(
        self, params: SubscriptionCreateParams, *, idempotency_key: str, fields: Fields | None = None
    ) -> stripe.Subscription:
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
