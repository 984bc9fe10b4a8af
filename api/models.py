"""Imports every domain's models so that Base.metadata is complete (Alembic, tests)."""

from api.alert.models import Alert
from api.audit.models import AuditEntry
from api.auth.models import ApiKey, SecurityEvent, StaffMember
from api.catalog.models import Price, Product
from api.customer.models import Customer, CustomerReferenceVersion
from api.db import Base
from api.dunning.models import DunningCase, DunningPolicy, DunningStep
from api.health.models import CustomerHealth, CustomerHealthSnapshot
from api.idempotency.models import MutationIdempotency
from api.invoice.models import Invoice, InvoiceLine, Payment, Refund
from api.mail.models import OutboundEmail
from api.reconciliation.models import Discrepancy, ReconciliationRun
from api.revenue.models import RevenueDay, RevenueDaySegment, SubscriptionMrrChange
from api.subscription.models import Subscription, SubscriptionItem
from api.usage.models import Meter, UsageBucket, UsageBucketValue, UsageEvent, UsageQuota, UsageRollupState
from api.webhook.models import WebhookEvent

__all__ = [
    "Alert",
    "ApiKey",
    "AuditEntry",
    "Base",
    "Customer",
    "CustomerHealth",
    "CustomerHealthSnapshot",
    "CustomerReferenceVersion",
    "Discrepancy",
    "DunningCase",
    "DunningPolicy",
    "DunningStep",
    "Invoice",
    "InvoiceLine",
    "Meter",
    "MutationIdempotency",
    "OutboundEmail",
    "Payment",
    "Price",
    "Product",
    "ReconciliationRun",
    "Refund",
    "RevenueDay",
    "RevenueDaySegment",
    "SecurityEvent",
    "StaffMember",
    "Subscription",
    "SubscriptionItem",
    "SubscriptionMrrChange",
    "UsageBucket",
    "UsageBucketValue",
    "UsageEvent",
    "UsageQuota",
    "UsageRollupState",
    "WebhookEvent",
]
