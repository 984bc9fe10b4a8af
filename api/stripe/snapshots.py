"""What Stripe holds, read for reconciliation: each customer, subscription and invoice as the
facts Ledgerline mirrors (in Ledgerline's vocabulary: enum names, ISO 8601 UTC times) plus the
object as JSON, which the webhook handlers apply to the mirror when a discrepancy is resolved."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import stripe

from api.stripe.gateway import StripeGateway
from api.stripe.invoice_mirror import invoice_customer_id, invoice_status
from api.stripe.mirror import SUBSCRIPTION_STATUS, at, from_timestamp
from api.subscription.models import SubscriptionStatus


@dataclass(frozen=True, slots=True)
class RemoteObject:
    stripe_id: str
    stripe_customer_id: str | None
    facts: dict[str, Any]
    payload: dict[str, Any]  # the object as Stripe sent it (JSON)


@dataclass(slots=True)
class StripeSnapshot:
    customers: dict[str, RemoteObject] = field(default_factory=dict)
    subscriptions: dict[str, RemoteObject] = field(default_factory=dict)
    invoices: dict[str, RemoteObject] = field(default_factory=dict)


def iso(value: int | None) -> str | None:
    moment = from_timestamp(value)
    return moment.isoformat() if moment is not None else None


def _ref(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    found = getattr(value, "id", None)
    return found if isinstance(found, str) else None


def customer_object(remote: stripe.Customer) -> RemoteObject:
    facts = {"name": remote.name, "email": remote.email, "phone": remote.phone}
    return RemoteObject(remote.id, remote.id, facts, remote.to_dict(for_json=True))


def subscription_object(remote: stripe.Subscription) -> RemoteObject:
    items = list(remote["items"].data)
    prices = sorted(item.price.id for item in items)
    facts = {
        "status": SUBSCRIPTION_STATUS.get(remote.status, SubscriptionStatus.INCOMPLETE).value,
        "quantity": sum(item.quantity or 0 for item in items),
        "price": prices[0] if len(prices) == 1 else prices,
        "cancel_at_period_end": bool(remote.cancel_at_period_end),
        "current_period_end": at(max(i.current_period_end for i in items)).isoformat() if items else None,
        "trial_end": iso(remote.trial_end),
    }
    return RemoteObject(remote.id, _ref(remote.customer), facts, remote.to_dict(for_json=True))


def invoice_object(remote: stripe.Invoice, amount_refunded: int) -> RemoteObject:
    assert remote.id is not None
    facts = {
        "status": invoice_status(remote).value,
        "amount_due": remote.amount_due,
        "amount_paid": remote.amount_paid,
        "amount_refunded": amount_refunded,
    }
    return RemoteObject(remote.id, invoice_customer_id(remote), facts, remote.to_dict(for_json=True))


def refunded_by_invoice(payments: list[stripe.InvoicePayment], charges: list[stripe.Charge]) -> dict[str, int]:
    """What was refunded of each invoice: the refunded amounts of the charges that paid it
    (invoices carry no refund total in this API version)."""
    by_charge = {c.id: c for c in charges}
    by_intent = {pi: c for c in charges if (pi := _ref(c.payment_intent)) is not None}
    refunded: dict[str, int] = defaultdict(int)
    for payment in payments:
        charge_id, intent_id = _ref(payment.payment.charge), _ref(payment.payment.payment_intent)
        charge = by_charge.get(charge_id or "") or by_intent.get(intent_id or "")
        invoice_id = _ref(payment.invoice)
        if charge is not None and invoice_id is not None:
            refunded[invoice_id] += charge.amount_refunded
    return dict(refunded)


async def fetch_snapshot(gateway: StripeGateway, stripe_customer_id: str | None) -> StripeSnapshot:
    """Every customer, subscription (any status) and invoice in Stripe, or those of one customer."""
    snapshot = StripeSnapshot()
    if stripe_customer_id is None:
        customers = await gateway.list_customers()
        subscriptions = await gateway.list_subscriptions()
        invoices = await gateway.list_invoices()
        payments = await gateway.list_paid_invoice_payments()
        charges = await gateway.list_charges()
    else:
        customer = await gateway.find_customer(stripe_customer_id)
        if customer is None:
            return snapshot
        customers = [customer]
        subscriptions = await gateway.list_subscriptions(stripe_customer_id)
        invoices = await gateway.list_invoices(stripe_customer_id)
        payments = []
        for invoice in invoices:
            if invoice.amount_paid and invoice.id is not None:
                payments.extend(await gateway.list_paid_invoice_payments(invoice.id))
        charges = await gateway.list_charges(stripe_customer_id) if payments else []
    refunded = refunded_by_invoice(payments, charges)
    snapshot.customers = {c.id: customer_object(c) for c in customers}
    snapshot.subscriptions = {s.id: subscription_object(s) for s in subscriptions}
    snapshot.invoices = {i.id: invoice_object(i, refunded.get(i.id, 0)) for i in invoices if i.id is not None}
    return snapshot


async def fetch_customer(gateway: StripeGateway, stripe_id: str) -> RemoteObject | None:
    found = await gateway.find_customer(stripe_id)
    return customer_object(found) if found is not None else None


async def fetch_subscription(gateway: StripeGateway, stripe_id: str) -> RemoteObject | None:
    found = await gateway.find_subscription(stripe_id)
    return subscription_object(found) if found is not None else None


async def fetch_invoice(gateway: StripeGateway, stripe_id: str) -> RemoteObject | None:
    found = await gateway.find_invoice(stripe_id)
    if found is None:
        return None
    payments = await gateway.list_paid_invoice_payments(stripe_id) if found.amount_paid else []
    customer = invoice_customer_id(found)
    charges = await gateway.list_charges(customer) if payments and customer else []
    return invoice_object(found, refunded_by_invoice(payments, charges).get(stripe_id, 0))
