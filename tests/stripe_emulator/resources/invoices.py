"""Invoices, their lines, invoice items; finalize / pay / send / void / mark uncollectible."""

from __future__ import annotations

from typing import Any

from stripe import params as p

from ..core import (
    Ctx,
    check_currency,
    diff,
    emit,
    format_amount,
    get,
    merge_metadata,
    new_id,
    paginate,
    put,
    render,
    renderer,
    require,
    route,
    unset,
)
from ..errors import StripeError, invalid, state_error
from ..schema import EMPTY
from ..state import EmulatorState, StoredObject
from .catalog import create_discounts, discount_coupon, inline_price
from .customers import add_balance_transaction, customer_payment_method, resolve_payment_method
from .payments import attempt_charge, new_payment_intent

RETRY_DELAY = 3 * 86400  # when Stripe would retry a failed automatic payment
MAX_ATTEMPTS = 4
AUTO_FINALIZE_DELAY = 3600  # drafts with auto_advance finalize about an hour after creation

# --------------------------------------------------------------------------------------------
# Lines


def make_line(
    *,
    invoice_id: str | None,
    amount: int,
    currency: str,
    description: str | None,
    period: tuple[int, int],
    price: StoredObject | None,
    quantity: int | None,
    parent: dict[str, Any],
    discountable: bool = True,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    pricing = None
    if price is not None:
        pricing = {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price.get("unit_amount_decimal"),
        }
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": description,
        "discount_amounts": [],
        "discountable": discountable,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": metadata or {},
        "parent": parent,
        "period": {"start": period[0], "end": period[1]},
        "pretax_credit_amounts": [],
        "pricing": pricing,
        "quantity": quantity,
        "subtotal": amount,
        "taxes": [],
    }


def line_from_invoice_item(item: StoredObject, invoice_id: str) -> dict[str, Any]:
    details = (item.get("parent") or {}).get("subscription_details") or {}
    if item.get("proration") and details.get("subscription_item"):
        parent: dict[str, Any] = {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": item["id"],
                "proration": True,
                "proration_details": {"credited_items": None},
                "subscription": details.get("subscription"),
                "subscription_item": details["subscription_item"],
            },
            "type": "subscription_item_details",
        }
    else:
        parent = {
            "invoice_item_details": {
                "invoice_item": item["id"],
                "proration": bool(item.get("proration")),
                "proration_details": {"credited_items": None},
                "subscription": details.get("subscription"),
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        }
    pricing = item.get("pricing")
    line = make_line(
        invoice_id=invoice_id,
        amount=item["amount"],
        currency=item["currency"],
        description=item.get("description"),
        period=(item["period"]["start"], item["period"]["end"]),
        price=None,
        quantity=item.get("quantity"),
        parent=parent,
        discountable=item.get("discountable", True),
        metadata=dict(item.get("metadata") or {}),
    )
    line["pricing"] = pricing
    line["_invoice_item"] = item["id"]
    return line


# --------------------------------------------------------------------------------------------
# Invoice objects


def new_invoice(
    state: EmulatorState,
    customer: StoredObject,
    *,
    currency: str,
    billing_reason: str,
    subscription: StoredObject | None = None,
    collection_method: str = "charge_automatically",
    auto_advance: bool = True,
    period: tuple[int, int] | None = None,
    proration_date: int | None = None,
) -> StoredObject:
    now = state.now()
    start, end = period or (now, now)
    parent = None
    if subscription is not None:
        parent = {
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(subscription.get("metadata") or {}),
                "subscription": subscription["id"],
                "subscription_proration_date": proration_date,
            },
            "type": "subscription_details",
        }
        collection_method = subscription["collection_method"]
    invoice: StoredObject = {
        "id": new_id("in"),
        "object": "invoice",
        "account_country": "US",
        "account_name": "Stripe Emulator",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": auto_advance,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": collection_method,
        "created": now,
        "currency": currency,
        "custom_fields": None,
        "customer": customer["id"],
        "customer_address": customer.get("address"),
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "customer_phone": customer.get("phone"),
        "customer_shipping": customer.get("shipping"),
        "customer_tax_exempt": customer.get("tax_exempt", "none"),
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": parent,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": end,
        "period_start": start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "threshold_reason": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
        "_lines": [],
        "_intent": None,
        "_payment": None,
    }
    if subscription is not None and subscription.get("days_until_due"):
        invoice["_days_until_due"] = subscription["days_until_due"]
    return put(state, invoice)


def invoice_subscription(state: EmulatorState, invoice: StoredObject) -> StoredObject | None:
    details = (invoice.get("parent") or {}).get("subscription_details")
    if not details:
        return None
    return state.collection("subscription").get(details["subscription"])


def _round_half_up(numerator: int, denominator: int) -> int:
    sign = -1 if (numerator < 0) != (denominator < 0) else 1
    numerator, denominator = abs(numerator), abs(denominator)
    return sign * ((2 * numerator + denominator) // (2 * denominator))


def compute_totals(state: EmulatorState, invoice: StoredObject) -> None:
    """Subtotal, per-line discount amounts, total; amount_due while the invoice is a draft."""
    lines = invoice["_lines"]
    subtotal = sum(line["amount"] for line in lines)
    for line in lines:
        line["discount_amounts"] = []
        line["subtotal"] = line["amount"]
    totals: dict[str, int] = {}
    for discount_id in invoice["discounts"]:
        discount = state.collection("discount").get(discount_id)
        if discount is None:
            continue
        coupon = discount_coupon(state, discount)
        discountable = [line for line in lines if line.get("discountable", True)]
        amounts: list[int] = []
        if coupon.get("percent_off") is not None:
            # Percent coupons scale every discountable line, credits included.
            basis_points = round(coupon["percent_off"] * 100)
            amounts = [_round_half_up(line["amount"] * basis_points, 10000) for line in discountable]
        elif coupon.get("amount_off") is not None:
            positive_lines = [line["amount"] if line["amount"] > 0 else 0 for line in discountable]
            base = sum(positive_lines)
            budget = min(coupon["amount_off"], max(base, 0))
            amounts = [0] * len(discountable)
            if base > 0 and budget > 0:
                running = 0
                for index, value in enumerate(positive_lines):
                    share = budget * value // base
                    amounts[index] = share
                    running += share
                # The rounding remainder goes to the largest line.
                if running != budget:
                    largest = max(range(len(positive_lines)), key=lambda i: positive_lines[i])
                    amounts[largest] += budget - running
        for line, amount in zip(discountable, amounts, strict=True):
            if amount:
                line["discount_amounts"].append({"amount": amount, "discount": discount_id})
        totals[discount_id] = sum(amounts)
    invoice["total_discount_amounts"] = [
        {"amount": amount, "discount": discount_id} for discount_id, amount in totals.items()
    ]
    total = subtotal - sum(totals.values())
    invoice["subtotal"] = subtotal
    invoice["subtotal_excluding_tax"] = subtotal
    invoice["total"] = total
    invoice["total_excluding_tax"] = total
    if invoice["status"] == "draft":
        invoice["amount_due"] = max(total, 0)
        invoice["amount_remaining"] = invoice["amount_due"] - invoice["amount_paid"]


@renderer("invoice")
def _render_invoice(state: EmulatorState, obj: StoredObject, out: dict[str, Any]) -> None:
    lines = []
    for line in obj["_lines"]:
        lines.append({k: v for k, v in line.items() if not k.startswith("_")})
    out["lines"] = {
        "object": "list",
        "data": lines,
        "has_more": False,
        "total_count": len(lines),
        "url": f"/v1/invoices/{obj['id']}/lines",
    }
    payments = [
        render(state, pay) for pay in state.collection("invoice_payment").values() if pay["invoice"] == obj["id"]
    ]
    out["payments"] = {
        "object": "list",
        "data": payments,
        "has_more": False,
        "total_count": len(payments),
        "url": f"/v1/invoice_payments?invoice={obj['id']}",
    }
    if obj["status"] != "draft" and not obj["id"].startswith("upcoming_"):
        out["hosted_invoice_url"] = f"{state.base_url}/_emulator/invoices/{obj['id']}/hosted"
        out["invoice_pdf"] = f"{state.base_url}/_emulator/invoices/{obj['id']}/pdf"


def add_pending_items(
    state: EmulatorState,
    invoice: StoredObject,
    *,
    subscription_id: str | None,
    only_subscription: bool,
) -> None:
    """Move the customer's pending invoice items onto ``invoice``."""
    for item in list(state.collection("invoiceitem").values()):
        if item.get("deleted") or item.get("invoice") or item["customer"] != invoice["customer"]:
            continue
        details = (item.get("parent") or {}).get("subscription_details") or {}
        item_sub = details.get("subscription")
        if only_subscription and item_sub != subscription_id:
            continue
        if not only_subscription and item_sub not in (None, subscription_id):
            continue
        if item["currency"] != invoice["currency"]:
            continue
        item["invoice"] = invoice["id"]
        invoice["_lines"].append(line_from_invoice_item(item, invoice["id"]))


# --------------------------------------------------------------------------------------------
# Lifecycle


def finalize(state: EmulatorState, invoice: StoredObject) -> None:
    if invoice["status"] != "draft":
        raise state_error(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            code="invoice_not_editable",
        )
    compute_totals(state, invoice)
    now = state.now()
    customer = state.collection("customer").get(invoice["customer"])
    total = invoice["total"]
    starting = 0
    applied = 0
    if customer is not None and not customer.get("deleted"):
        starting = customer.get("balance") or 0
        if total < 0:
            applied = total  # a net credit goes to the customer's balance
        elif starting > 0:
            applied = starting
        else:
            applied = max(starting, -total)
        if applied:
            add_balance_transaction(
                state,
                customer,
                -applied if total >= 0 else total,
                invoice["currency"],
                kind="applied_to_invoice",
                invoice=invoice["id"],
            )
        sequence = customer.get("next_invoice_sequence") or 1
        invoice["number"] = f"{customer['invoice_prefix']}-{sequence:04d}"
        customer["next_invoice_sequence"] = sequence + 1
    else:
        invoice["number"] = f"EMU-{state.next_counter('invoice_number'):04d}"
    invoice["starting_balance"] = starting
    if total >= 0:
        invoice["ending_balance"] = starting - applied
        invoice["amount_due"] = total + applied
    else:
        invoice["ending_balance"] = starting + total
        invoice["amount_due"] = 0
    invoice["amount_remaining"] = invoice["amount_due"] - invoice["amount_paid"]
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = now
    invoice["effective_at"] = now
    invoice["automatically_finalizes_at"] = None
    if invoice["collection_method"] == "send_invoice":
        days = invoice.get("_days_until_due")
        if invoice.get("due_date") is None:
            invoice["due_date"] = now + 86400 * (days if days is not None else 30)
    emit(state, "invoice.finalized", invoice)
    if invoice["amount_due"] == 0:
        mark_paid(state, invoice)


def mark_paid(state: EmulatorState, invoice: StoredObject, *, out_of_band: bool = False) -> None:
    invoice["status"] = "paid"
    if out_of_band:
        invoice["amount_paid_off_stripe"] = invoice["amount_remaining"]
    invoice["amount_paid"] = invoice["amount_due"]
    invoice["amount_remaining"] = 0
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"]["paid_at"] = state.now()
    emit(state, "invoice.paid", invoice)
    emit(state, "invoice.payment_succeeded", invoice)
    from .subscriptions import on_invoice_paid

    on_invoice_paid(state, invoice)


def _payment_method_for(state: EmulatorState, invoice: StoredObject, override: Any) -> StoredObject | None:
    if override:
        return resolve_payment_method(state, override, "payment_method")
    candidates = [invoice.get("default_payment_method")]
    subscription = invoice_subscription(state, invoice)
    if subscription is not None:
        candidates.append(subscription.get("default_payment_method"))
    customer = state.collection("customer").get(invoice["customer"])
    if customer is not None and not customer.get("deleted"):
        candidates.append(customer["invoice_settings"].get("default_payment_method"))
    for pm_id in candidates:
        if pm_id and pm_id in state.collection("payment_method"):
            return state.collection("payment_method")[pm_id]
    return None


def pay(
    state: EmulatorState,
    invoice: StoredObject,
    *,
    payment_method: Any = None,
    automatic: bool = False,
) -> StripeError | None:
    """Attempt to collect ``amount_remaining``; returns the error when the payment failed."""
    if invoice["status"] == "draft":
        finalize(state, invoice)
    if invoice["status"] == "paid":
        if automatic:
            return None
        raise state_error("Invoice is already paid", code="invoice_already_paid")
    if invoice["status"] == "void":
        raise state_error("This invoice has been voided and cannot be paid.", code="invoice_not_editable")
    if invoice["amount_remaining"] <= 0:
        mark_paid(state, invoice)
        return None
    if state.dry_run:
        return None
    pm = _payment_method_for(state, invoice, payment_method)
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    if pm is None:
        error = StripeError(
            400,
            "This customer has no attached payment source or default payment method. Please "
            "consider adding a default payment method.",
            code="invoice_no_payment_method",
        )
        _payment_failed(state, invoice)
        return error
    intent = state.collection("payment_intent").get(invoice["_intent"] or "")
    if intent is None:
        intent = new_payment_intent(
            state,
            amount=invoice["amount_remaining"],
            currency=invoice["currency"],
            customer=invoice["customer"],
            description=_intent_description(invoice),
        )
        invoice["_intent"] = intent["id"]
        payment: StoredObject = {
            "id": new_id("inpay"),
            "object": "invoice_payment",
            "amount_paid": None,
            "amount_requested": invoice["amount_remaining"],
            "created": state.now(),
            "currency": invoice["currency"],
            "invoice": invoice["id"],
            "is_default": True,
            "livemode": False,
            "payment": {
                "charge": None,
                "payment_intent": intent["id"],
                "payment_record": None,
                "type": "payment_intent",
            },
            "status": "open",
            "status_transitions": {"canceled_at": None, "paid_at": None},
        }
        put(state, payment)
        invoice["_payment"] = payment["id"]
    else:
        intent["amount"] = invoice["amount_remaining"]
    _charge, declined = attempt_charge(state, intent, pm, description=_intent_description(invoice))
    if declined is not None:
        _payment_failed(state, invoice)
        return declined
    payment = state.collection("invoice_payment")[invoice["_payment"]]
    payment["amount_paid"] = intent["amount"]
    payment["status"] = "paid"
    payment["status_transitions"]["paid_at"] = state.now()
    emit(state, "invoice_payment.paid", payment)
    mark_paid(state, invoice)
    return None


def _intent_description(invoice: StoredObject) -> str:
    return {
        "subscription_create": "Subscription creation",
        "subscription_cycle": "Subscription update",
        "subscription_update": "Subscription update",
    }.get(invoice["billing_reason"] or "", f"Invoice {invoice['number']}")


def _payment_failed(state: EmulatorState, invoice: StoredObject) -> None:
    subscription = invoice_subscription(state, invoice)
    automatic = invoice["collection_method"] == "charge_automatically"
    if automatic and subscription is not None and invoice["attempt_count"] < MAX_ATTEMPTS:
        invoice["next_payment_attempt"] = state.now() + RETRY_DELAY
    else:
        invoice["next_payment_attempt"] = None
    emit(state, "invoice.payment_failed", invoice)
    from .subscriptions import on_invoice_payment_failed

    on_invoice_payment_failed(state, invoice)


def advance(state: EmulatorState, invoice: StoredObject) -> StripeError | None:
    """What Stripe does with a fresh subscription invoice: finalize, then collect."""
    if state.dry_run:
        compute_totals(state, invoice)
        return None
    finalize(state, invoice)
    if invoice["status"] == "open" and invoice["collection_method"] == "charge_automatically":
        return pay(state, invoice, automatic=True)
    return None


def void(state: EmulatorState, invoice: StoredObject) -> None:
    if invoice["status"] not in ("open", "uncollectible"):
        raise state_error(
            f"You can only pass in open or uncollectible invoices, invoice {invoice['id']} is {invoice['status']}.",
            code="invoice_not_editable",
        )
    invoice["status"] = "void"
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"]["voided_at"] = state.now()
    intent = state.collection("payment_intent").get(invoice["_intent"] or "")
    if intent is not None and intent["status"] != "succeeded":
        intent["status"] = "canceled"
        intent["canceled_at"] = state.now()
        intent["cancellation_reason"] = "void_invoice"
        emit(state, "payment_intent.canceled", intent)
    emit(state, "invoice.voided", invoice)
    from .subscriptions import on_invoice_closed

    on_invoice_closed(state, invoice)


def mark_uncollectible(state: EmulatorState, invoice: StoredObject) -> None:
    if invoice["status"] != "open":
        raise state_error(
            f"You can only mark open invoices as uncollectible, invoice {invoice['id']} is {invoice['status']}.",
            code="invoice_not_editable",
        )
    invoice["status"] = "uncollectible"
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"]["marked_uncollectible_at"] = state.now()
    emit(state, "invoice.marked_uncollectible", invoice)
    from .subscriptions import on_invoice_closed

    on_invoice_closed(state, invoice)


# --------------------------------------------------------------------------------------------
# Endpoints


@route("POST", "/v1/invoices", p.InvoiceCreateParams)
def create_invoice(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    params = ctx.params
    customer = get(state, "customer", require(params, "customer"), param="customer")
    subscription = None
    if params.get("subscription"):
        subscription = get(state, "subscription", params["subscription"], param="subscription")
        if subscription["customer"] != customer["id"]:
            raise invalid("The subscription does not belong to this customer.", param="subscription")
    currency = check_currency(params.get("currency") or customer.get("currency") or "usd")
    collection_method = params.get("collection_method", "charge_automatically")
    if collection_method == "send_invoice" and not (params.get("days_until_due") is not None or params.get("due_date")):
        raise invalid(
            "Invoices with `collection_method=send_invoice` need `days_until_due` or `due_date`.",
            param="days_until_due",
            code="parameter_missing",
        )
    invoice = new_invoice(
        state,
        customer,
        currency=currency,
        billing_reason="manual",
        subscription=subscription,
        collection_method=collection_method,
        auto_advance=params.get("auto_advance", False),
    )
    invoice["collection_method"] = collection_method
    if invoice["auto_advance"]:
        invoice["automatically_finalizes_at"] = invoice["created"] + AUTO_FINALIZE_DELAY
    if params.get("days_until_due") is not None:
        invoice["_days_until_due"] = params["days_until_due"]
    _apply_invoice_fields(state, invoice, customer, params)
    if params.get("discounts") not in (None, EMPTY):
        invoice["discounts"] = create_discounts(
            state,
            params["discounts"],
            customer=customer["id"],
            param="discounts",
            invoice=invoice["id"],
            currency=currency,
        )
    if params.get("pending_invoice_items_behavior") == "include" or subscription is not None:
        add_pending_items(
            state,
            invoice,
            subscription_id=subscription["id"] if subscription else None,
            only_subscription=subscription is not None,
        )
    compute_totals(state, invoice)
    emit(state, "invoice.created", invoice)
    return render(state, invoice)


def _apply_invoice_fields(
    state: EmulatorState, invoice: StoredObject, customer: StoredObject, params: dict[str, Any]
) -> None:
    for key in ("description", "footer", "statement_descriptor", "due_date", "custom_fields"):
        if key in params:
            invoice[key] = unset(params[key])
    if "metadata" in params:
        invoice["metadata"] = merge_metadata(invoice.get("metadata"), params["metadata"])
    if "auto_advance" in params:
        invoice["auto_advance"] = params["auto_advance"]
        if invoice["status"] == "draft":
            invoice["automatically_finalizes_at"] = (
                state.now() + AUTO_FINALIZE_DELAY if params["auto_advance"] else None
            )
    if "default_payment_method" in params:
        pm_id = unset(params["default_payment_method"])
        if pm_id is not None:
            pm_id = customer_payment_method(state, customer, pm_id, "default_payment_method")["id"]
        invoice["default_payment_method"] = pm_id


def _invoice(ctx: Ctx) -> StoredObject:
    return get(ctx.state, "invoice", ctx.path["invoice"])


@route("GET", "/v1/invoices/{invoice}", p.InvoiceRetrieveParams)
def retrieve_invoice(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "invoice", ctx.path["invoice"], allow_deleted=True))


@route("POST", "/v1/invoices/{invoice}", p.InvoiceUpdateParams)
def update_invoice(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    invoice = _invoice(ctx)
    before = render(state, invoice)
    draft_only = set(ctx.params) - {"metadata", "auto_advance", "expand", "description", "footer"}
    if invoice["status"] != "draft" and draft_only:
        raise state_error(
            f"Finalized invoices can't be updated in this way: {sorted(draft_only)[0]}",
            code="invoice_not_editable",
            param=sorted(draft_only)[0],
        )
    customer = state.collection("customer")[invoice["customer"]]
    _apply_invoice_fields(state, invoice, customer, ctx.params)
    if "collection_method" in ctx.params:
        invoice["collection_method"] = ctx.params["collection_method"]
    if "days_until_due" in ctx.params:
        invoice["_days_until_due"] = ctx.params["days_until_due"]
    if "discounts" in ctx.params:
        invoice["discounts"] = create_discounts(
            state,
            ctx.params["discounts"],
            customer=customer["id"],
            param="discounts",
            invoice=invoice["id"],
            currency=invoice["currency"],
        )
    if invoice["status"] == "draft":
        compute_totals(state, invoice)
    after = render(state, invoice)
    emit(state, "invoice.updated", invoice, diff(before, after))
    return after


@route("DELETE", "/v1/invoices/{invoice}", p.InvoiceDeleteParams)
def delete_invoice(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    invoice = _invoice(ctx)
    if invoice["status"] != "draft":
        raise state_error("You can only delete draft invoices.", code="invoice_not_editable")
    for line in invoice["_lines"]:
        item = state.collection("invoiceitem").get(line.get("_invoice_item") or "")
        if item is not None:
            item["invoice"] = None
    snapshot = render(state, invoice)
    stub = {"id": invoice["id"], "object": "invoice", "deleted": True}
    state.collection("invoice")[invoice["id"]] = stub
    emit(state, "invoice.deleted", snapshot)
    return dict(stub)


@route("POST", "/v1/invoices/{invoice}/finalize", p.InvoiceFinalizeInvoiceParams)
def finalize_invoice(ctx: Ctx) -> dict[str, Any]:
    invoice = _invoice(ctx)
    finalize(ctx.state, invoice)
    if "auto_advance" in ctx.params:
        invoice["auto_advance"] = ctx.params["auto_advance"]
    return render(ctx.state, invoice)


@route("POST", "/v1/invoices/{invoice}/pay", p.InvoicePayParams)
def pay_invoice(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    invoice = _invoice(ctx)
    if ctx.params.get("paid_out_of_band"):
        if invoice["status"] == "draft":
            finalize(state, invoice)
        if invoice["status"] not in ("open", "uncollectible"):
            raise state_error("Invoice is already paid", code="invoice_already_paid")
        mark_paid(state, invoice, out_of_band=True)
        return render(state, invoice)
    if ctx.params.get("forgive"):
        pass  # nothing is partially paid in the emulator, so forgiving changes nothing
    error = pay(state, invoice, payment_method=ctx.params.get("payment_method"))
    if error is not None:
        error.commit = True
        raise error
    return render(state, invoice)


@route("POST", "/v1/invoices/{invoice}/send", p.InvoiceSendInvoiceParams)
def send_invoice(ctx: Ctx) -> dict[str, Any]:
    invoice = _invoice(ctx)
    if invoice["collection_method"] != "send_invoice":
        raise state_error(
            "You can only manually send an invoice if its collection method is 'send_invoice'.",
            code="invoice_not_editable",
        )
    if invoice["status"] == "draft":
        finalize(ctx.state, invoice)
    emit(ctx.state, "invoice.sent", invoice)
    return render(ctx.state, invoice)


@route("POST", "/v1/invoices/{invoice}/void", p.InvoiceVoidInvoiceParams)
def void_invoice(ctx: Ctx) -> dict[str, Any]:
    invoice = _invoice(ctx)
    void(ctx.state, invoice)
    return render(ctx.state, invoice)


@route("POST", "/v1/invoices/{invoice}/mark_uncollectible", p.InvoiceMarkUncollectibleParams)
def mark_uncollectible_invoice(ctx: Ctx) -> dict[str, Any]:
    invoice = _invoice(ctx)
    mark_uncollectible(ctx.state, invoice)
    return render(ctx.state, invoice)


@route("GET", "/v1/invoices", p.InvoiceListParams)
def list_invoices(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    params = ctx.params
    objects = [o for o in state.collection("invoice").values() if not o.get("deleted")]
    for key in ("customer", "status", "collection_method"):
        if params.get(key):
            objects = [o for o in objects if o.get(key) == params[key]]
    if params.get("subscription"):
        objects = [
            o
            for o in objects
            if ((o.get("parent") or {}).get("subscription_details") or {}).get("subscription") == params["subscription"]
        ]
    return paginate(state, objects, params, "/v1/invoices")


@route("GET", "/v1/invoices/{invoice}/lines", p.InvoiceLineItemListParams)
def list_invoice_lines(ctx: Ctx) -> dict[str, Any]:
    invoice = _invoice(ctx)
    lines = list(reversed(invoice["_lines"]))  # paginate() lists newest first; keep line order
    return paginate(ctx.state, lines, ctx.params, f"/v1/invoices/{invoice['id']}/lines")


# --------------------------------------------------------------------------------------------
# Invoice items


def new_invoice_item(
    state: EmulatorState,
    customer: StoredObject,
    *,
    amount: int,
    currency: str,
    description: str | None,
    period: tuple[int, int],
    quantity: int = 1,
    price: StoredObject | None = None,
    subscription: str | None = None,
    subscription_item: str | None = None,
    proration: bool = False,
    discountable: bool = True,
    metadata: dict[str, str] | None = None,
) -> StoredObject:
    item: StoredObject = {
        "id": new_id("ii"),
        "object": "invoiceitem",
        "amount": amount,
        "currency": currency,
        "customer": customer["id"],
        "customer_account": None,
        "date": state.now(),
        "description": description,
        "discountable": discountable,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": metadata or {},
        "net_amount": amount,
        "parent": (
            {
                "subscription_details": {
                    "subscription": subscription,
                    "subscription_item": subscription_item,
                },
                "type": "subscription_details",
            }
            if subscription
            else None
        ),
        "period": {"start": period[0], "end": period[1]},
        "pricing": (
            {
                "price_details": {"price": price["id"], "product": price["product"]},
                "type": "price_details",
                "unit_amount_decimal": price["unit_amount_decimal"],
            }
            if price is not None
            else {
                "price_details": None,
                "type": "price_details",
                "unit_amount_decimal": str(amount // quantity if quantity else amount),
            }
        ),
        "proration": proration,
        "proration_details": {"credited_items": None, "discount_amounts": []},
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "tax_rates": [],
        "test_clock": None,
    }
    return put(state, item)


@route("POST", "/v1/invoiceitems", p.InvoiceItemCreateParams)
def create_invoice_item(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    params = ctx.params
    customer = get(state, "customer", require(params, "customer"), param="customer")
    quantity = params.get("quantity", 1)
    if quantity < 0:
        raise invalid(
            "This value must be greater than or equal to 0.", param="quantity", code="parameter_invalid_integer"
        )
    price = None
    pricing = params.get("pricing") or {}
    if pricing.get("price"):
        price = get(state, "price", pricing["price"], param="pricing[price]")
        if price["type"] != "one_time" and not params.get("subscription"):
            raise invalid("The price must be a one-time price.", param="pricing[price]")
        amount = price["unit_amount"] * quantity
        currency = price["currency"]
    elif isinstance(params.get("price_data"), dict):
        price = inline_price(state, params["price_data"], "price_data", recurring=False)
        amount = price["unit_amount"] * quantity
        currency = price["currency"]
    elif params.get("unit_amount_decimal") is not None:
        if "amount" in params:
            raise invalid(
                "You may only specify one of these parameters: amount, unit_amount_decimal.",
                param="unit_amount_decimal",
            )
        # unit price (in minor units, decimals allowed) x quantity, rounded half up as Stripe does
        amount = int((params["unit_amount_decimal"] * quantity).quantize(1, rounding="ROUND_HALF_UP"))
        currency = check_currency(require(params, "currency"))
    else:
        if "amount" not in params:
            raise invalid("Missing required param: amount.", param="amount", code="parameter_missing")
        amount = params["amount"]
        currency = check_currency(require(params, "currency"))
    if params.get("currency") and check_currency(params["currency"]) != currency:
        raise invalid("The currency must match the price's currency.", param="currency")
    invoice = None
    if params.get("invoice"):
        invoice = get(state, "invoice", params["invoice"], param="invoice")
        if invoice["status"] != "draft":
            raise state_error(
                "You can only add invoice items to draft invoices.", code="invoice_not_editable", param="invoice"
            )
        if invoice["customer"] != customer["id"]:
            raise invalid("The invoice belongs to a different customer.", param="invoice")
        if invoice["currency"] != currency:
            raise invalid("The invoice item's currency must match the invoice's.", param="currency")
    subscription = None
    if params.get("subscription"):
        subscription = get(state, "subscription", params["subscription"], param="subscription")
    now = ctx.now
    period = params.get("period") or {"start": now, "end": now}
    description = params.get("description")
    if description is None and price is not None:
        product = state.collection("product").get(price["product"]) or {"name": "Item"}
        description = product.get("name")
    item = new_invoice_item(
        state,
        customer,
        amount=amount,
        currency=currency,
        description=description,
        period=(period["start"], period["end"]),
        quantity=quantity,
        price=price,
        subscription=subscription["id"] if subscription else None,
        discountable=params.get("discountable", amount >= 0),
        metadata=merge_metadata({}, params.get("metadata", {})),
    )
    if invoice is not None:
        item["invoice"] = invoice["id"]
        invoice["_lines"].append(line_from_invoice_item(item, invoice["id"]))
        compute_totals(state, invoice)
    emit(state, "invoiceitem.created", item)
    return render(state, item)


@route("GET", "/v1/invoiceitems/{invoiceitem}", p.InvoiceItemRetrieveParams)
def retrieve_invoice_item(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "invoiceitem", ctx.path["invoiceitem"], allow_deleted=True))


def _editable_item(ctx: Ctx) -> tuple[StoredObject, StoredObject | None]:
    item = get(ctx.state, "invoiceitem", ctx.path["invoiceitem"])
    invoice = None
    if item.get("invoice"):
        invoice = ctx.state.collection("invoice").get(item["invoice"])
        if invoice is not None and invoice.get("status") != "draft":
            raise state_error("Invoice items on finalized invoices can't be changed.", code="invoice_not_editable")
    return item, invoice


@route("POST", "/v1/invoiceitems/{invoiceitem}", p.InvoiceItemUpdateParams)
def update_invoice_item(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    item, invoice = _editable_item(ctx)
    params = ctx.params
    if "amount" in params:
        item["amount"] = params["amount"]
        item["net_amount"] = params["amount"]
    if "quantity" in params and item["pricing"] and item["pricing"].get("price_details"):
        price = state.collection("price")[item["pricing"]["price_details"]["price"]]
        item["quantity"] = params["quantity"]
        item["amount"] = item["net_amount"] = price["unit_amount"] * params["quantity"]
    for key in ("description", "discountable"):
        if key in params:
            item[key] = unset(params[key])
    if "metadata" in params:
        item["metadata"] = merge_metadata(item.get("metadata"), params["metadata"])
    if isinstance(params.get("period"), dict):
        item["period"] = dict(params["period"])
    if invoice is not None:
        invoice["_lines"] = [
            line_from_invoice_item(item, invoice["id"]) if line.get("_invoice_item") == item["id"] else line
            for line in invoice["_lines"]
        ]
        compute_totals(state, invoice)
    emit(state, "invoiceitem.updated", item)
    return render(state, item)


@route("DELETE", "/v1/invoiceitems/{invoiceitem}", p.InvoiceItemDeleteParams)
def delete_invoice_item(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    item, invoice = _editable_item(ctx)
    if invoice is not None:
        invoice["_lines"] = [line for line in invoice["_lines"] if line.get("_invoice_item") != item["id"]]
        compute_totals(state, invoice)
    snapshot = render(state, item)
    stub = {"id": item["id"], "object": "invoiceitem", "deleted": True}
    state.collection("invoiceitem")[item["id"]] = stub
    emit(state, "invoiceitem.deleted", snapshot)
    return dict(stub)


@route("GET", "/v1/invoiceitems", p.InvoiceItemListParams)
def list_invoice_items(ctx: Ctx) -> dict[str, Any]:
    params = ctx.params
    objects = [o for o in ctx.state.collection("invoiceitem").values() if not o.get("deleted")]
    if params.get("customer"):
        objects = [o for o in objects if o["customer"] == params["customer"]]
    if params.get("invoice"):
        objects = [o for o in objects if o.get("invoice") == params["invoice"]]
    if "pending" in params:
        objects = [o for o in objects if (o.get("invoice") is None) == params["pending"]]
    return paginate(ctx.state, objects, params, "/v1/invoiceitems")


def describe_amount(amount: int, currency: str) -> str:
    return format_amount(amount, currency)
