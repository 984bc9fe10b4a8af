"""Payment intents and charges (as produced by invoice payments), invoice payments, refunds."""

from __future__ import annotations

import secrets
from typing import Any

from stripe import params as p

from ..core import (
    Ctx,
    diff,
    emit,
    get,
    merge_metadata,
    new_id,
    paginate,
    positive,
    put,
    render,
    renderer,
    route,
)
from ..errors import StripeError, invalid
from ..state import EmulatorState, StoredObject
from .customers import DECLINE_MESSAGES, card_of, decline_error

# --------------------------------------------------------------------------------------------
# Charging a payment method


def _charge_outcome(decline: str | None) -> dict[str, Any]:
    if decline is None:
        return {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    return {
        "advice_code": "try_again_later" if decline == "insufficient_funds" else "do_not_try_again",
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "declined_by_network",
        "reason": decline,
        "risk_level": "normal",
        "risk_score": 20,
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }


def new_payment_intent(
    state: EmulatorState, *, amount: int, currency: str, customer: str | None, description: str
) -> StoredObject:
    intent: StoredObject = {
        "id": new_id("pi"),
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": None,
        "confirmation_method": "automatic",
        "created": state.now(),
        "currency": currency,
        "customer": customer,
        "description": description,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }
    intent["client_secret"] = f"{intent['id']}_secret_{secrets.token_hex(12)}"
    put(state, intent)
    emit(state, "payment_intent.created", intent)
    return intent


def attempt_charge(
    state: EmulatorState, intent: StoredObject, pm: StoredObject, *, description: str | None
) -> tuple[StoredObject, StripeError | None]:
    """Charge ``pm`` for the intent's amount; the returned error is the card error, if declined."""
    card = card_of(pm)
    decline = card.charge_decline
    charge: StoredObject = {
        "id": new_id("ch"),
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": 0 if decline else intent["amount"],
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "authorization_code": None if decline else f"{secrets.randbelow(10**6):06d}",
        "balance_transaction": None,
        "billing_details": pm.get("billing_details"),
        "calculated_statement_descriptor": "LEDGERLINE",
        "captured": decline is None,
        "created": state.now(),
        "currency": intent["currency"],
        "customer": intent["customer"],
        "description": description,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": card.decline_error_code if decline else None,
        "failure_message": DECLINE_MESSAGES.get(decline or "", None) if decline else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": _charge_outcome(decline),
        "paid": decline is None,
        "payment_intent": intent["id"],
        "payment_method": pm["id"],
        "payment_method_details": {
            "card": {
                "amount_authorized": None if decline else intent["amount"],
                "brand": pm["card"]["brand"],
                "checks": pm["card"].get("checks"),
                "country": pm["card"].get("country"),
                "exp_month": pm["card"]["exp_month"],
                "exp_year": pm["card"]["exp_year"],
                "fingerprint": pm["card"].get("fingerprint"),
                "funding": pm["card"]["funding"],
                "last4": pm["card"]["last4"],
                "network": pm["card"]["brand"],
                "network_token": {"used": False},
            },
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": f"{state.base_url}/_emulator/receipts/{intent['id']}",
        "refunded": False,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "failed" if decline else "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }
    put(state, charge)
    intent["latest_charge"] = charge["id"]
    intent["payment_method"] = pm["id"]
    if decline:
        # The error body carries the ids, as Stripe's does.
        error = decline_error(card, decline, {"charge": charge["id"], "payment_intent": {"id": intent["id"]}})
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = {
            "charge": charge["id"],
            "code": error.code,
            "decline_code": error.decline_code,
            "doc_url": f"https://stripe.com/docs/error-codes/{(error.code or '').replace('_', '-')}",
            "message": error.message,
            "payment_method": render(state, pm),
            "type": "card_error",
        }
        emit(state, "charge.failed", charge)
        emit(state, "payment_intent.payment_failed", intent)
        return charge, error
    intent["status"] = "succeeded"
    intent["amount_received"] = intent["amount"]
    intent["last_payment_error"] = None
    emit(state, "charge.succeeded", charge)
    emit(state, "payment_intent.succeeded", intent)
    return charge, None


@renderer("charge")
def _render_charge(state: EmulatorState, obj: StoredObject, out: dict[str, Any]) -> None:
    refunds = [r for r in state.collection("refund").values() if r["charge"] == obj["id"]]
    out["refunds"] = {
        "object": "list",
        "data": [render(state, r) for r in reversed(refunds)],
        "has_more": False,
        "total_count": len(refunds),
        "url": f"/v1/charges/{obj['id']}/refunds",
    }


# --------------------------------------------------------------------------------------------
# Read endpoints


@route("GET", "/v1/payment_intents/{intent}", p.PaymentIntentRetrieveParams)
def retrieve_payment_intent(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "payment_intent", ctx.path["intent"]))


@route("GET", "/v1/payment_intents", p.PaymentIntentListParams)
def list_payment_intents(ctx: Ctx) -> dict[str, Any]:
    objects = list(ctx.state.collection("payment_intent").values())
    if ctx.params.get("customer"):
        objects = [o for o in objects if o.get("customer") == ctx.params["customer"]]
    return paginate(ctx.state, objects, ctx.params, "/v1/payment_intents")


@route("GET", "/v1/charges/{charge}", p.ChargeRetrieveParams)
def retrieve_charge(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "charge", ctx.path["charge"]))


@route("GET", "/v1/charges", p.ChargeListParams)
def list_charges(ctx: Ctx) -> dict[str, Any]:
    objects = list(ctx.state.collection("charge").values())
    for key in ("customer", "payment_intent"):
        if ctx.params.get(key):
            objects = [o for o in objects if o.get(key) == ctx.params[key]]
    return paginate(ctx.state, objects, ctx.params, "/v1/charges")


@route("GET", "/v1/invoice_payments/{invoice_payment}", p.InvoicePaymentRetrieveParams)
def retrieve_invoice_payment(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "invoice_payment", ctx.path["invoice_payment"]))


@route("GET", "/v1/invoice_payments", p.InvoicePaymentListParams)
def list_invoice_payments(ctx: Ctx) -> dict[str, Any]:
    objects = list(ctx.state.collection("invoice_payment").values())
    if ctx.params.get("invoice"):
        objects = [o for o in objects if o["invoice"] == ctx.params["invoice"]]
    if ctx.params.get("status"):
        objects = [o for o in objects if o["status"] == ctx.params["status"]]
    return paginate(ctx.state, objects, ctx.params, "/v1/invoice_payments")


# --------------------------------------------------------------------------------------------
# Refunds


@route("POST", "/v1/refunds", p.RefundCreateParams)
def create_refund(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    params = ctx.params
    if params.get("charge"):
        charge = get(state, "charge", params["charge"], param="charge")
    elif params.get("payment_intent"):
        intent = get(state, "payment_intent", params["payment_intent"], param="payment_intent")
        if not intent.get("latest_charge") or intent["status"] != "succeeded":
            raise invalid(
                "This PaymentIntent does not have a successful charge to refund.",
                param="payment_intent",
                code="charge_not_refundable",
            )
        charge = state.collection("charge")[intent["latest_charge"]]
    else:
        raise invalid(
            "One of the following params should be provided for this request: payment_intent or charge.",
            param="charge",
            code="parameter_missing",
        )
    if charge["status"] != "succeeded":
        raise invalid(
            f"Charge {charge['id']} has not succeeded and cannot be refunded.",
            param="charge",
            code="charge_not_refundable",
        )
    refundable = charge["amount_captured"] - charge["amount_refunded"]
    if refundable <= 0:
        raise invalid(
            f"Charge {charge['id']} has already been refunded.", param="charge", code="charge_already_refunded"
        )
    amount = params.get("amount", refundable)
    positive(amount, "amount")
    if amount > refundable:
        raise invalid(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable})",
            param="amount",
            code="amount_too_large",
        )
    before = render(state, charge)
    refund: StoredObject = {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": charge["id"],
        "created": ctx.now,
        "currency": charge["currency"],
        "customer": charge.get("customer"),
        "description": None,
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "instructions_email": params.get("instructions_email"),
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata", {})),
        "payment_intent": charge.get("payment_intent"),
        "payment_method": charge.get("payment_method"),
        "reason": params.get("reason"),
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }
    put(state, refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    emit(state, "refund.created", refund)
    emit(state, "charge.refunded", charge, diff(before, render(state, charge)))
    return render(state, refund)


@route("GET", "/v1/refunds/{refund}", p.RefundRetrieveParams)
def retrieve_refund(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "refund", ctx.path["refund"]))


@route("POST", "/v1/refunds/{refund}", p.RefundUpdateParams)
def update_refund(ctx: Ctx) -> dict[str, Any]:
    refund = get(ctx.state, "refund", ctx.path["refund"])
    if "metadata" in ctx.params:
        refund["metadata"] = merge_metadata(refund.get("metadata"), ctx.params["metadata"])
        emit(ctx.state, "refund.updated", refund)
    return render(ctx.state, refund)


@route("GET", "/v1/refunds", p.RefundListParams)
def list_refunds(ctx: Ctx) -> dict[str, Any]:
    objects = list(ctx.state.collection("refund").values())
    for key in ("charge", "payment_intent"):
        if ctx.params.get(key):
            objects = [o for o in objects if o.get(key) == ctx.params[key]]
    return paginate(ctx.state, objects, ctx.params, "/v1/refunds")
