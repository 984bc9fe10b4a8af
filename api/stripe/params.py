"""The SDK's typed request params, re-exported so services can build requests that mypy checks
without importing `stripe` themselves (api/stripe/ is the only package that does)."""

from stripe.params import (
    CouponCreateParams,
    CustomerCreateBalanceTransactionParams,
    CustomerCreateParams,
    CustomerUpdateParams,
    InvoiceCreateParams,
    InvoiceCreatePreviewParams,
    InvoiceItemCreateParams,
    InvoicePayParams,
    PriceCreateParams,
    ProductCreateParams,
    PromotionCodeCreateParams,
    RefundCreateParams,
    SubscriptionCancelParams,
    SubscriptionCreateParams,
    SubscriptionResumeParams,
    SubscriptionUpdateParams,
)
from stripe.params._customer_create_params import CustomerCreateParamsAddress
from stripe.params._invoice_create_preview_params import InvoiceCreatePreviewParamsSubscriptionDetailsItem
from stripe.params._subscription_update_params import SubscriptionUpdateParamsItem

__all__ = [
    "CouponCreateParams",
    "CustomerCreateBalanceTransactionParams",
    "CustomerCreateParams",
    "CustomerCreateParamsAddress",
    "CustomerUpdateParams",
    "InvoiceCreateParams",
    "InvoiceCreatePreviewParams",
    "InvoiceCreatePreviewParamsSubscriptionDetailsItem",
    "InvoiceItemCreateParams",
    "InvoicePayParams",
    "PriceCreateParams",
    "ProductCreateParams",
    "PromotionCodeCreateParams",
    "RefundCreateParams",
    "SubscriptionCancelParams",
    "SubscriptionCreateParams",
    "SubscriptionResumeParams",
    "SubscriptionUpdateParams",
    "SubscriptionUpdateParamsItem",
]
