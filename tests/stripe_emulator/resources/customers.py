"""Customers, payment methods (with Stripe's test tokens) and customer balance transactions."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from stripe import params as p

from ..core import (
    Ctx,
    check_currency,
    diff,
    emit,
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
from ..errors import card_error, invalid, state_error
from ..schema import EMPTY
from ..state import EmulatorState, StoredObject

# --------------------------------------------------------------------------------------------
# Test cards


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    # Decline when attached to a customer (the card check fails), and when charged.
    attach_decline: str | None = None
    charge_decline: str | None = None
    decline_error_code: str = "card_declined"
    funding: str = "credit"


TEST_TOKENS: dict[str, TestCard] = {
    "pm_card_visa": TestCard("visa", "4242"),
    "pm_card_visa_debit": TestCard("visa", "5556", funding="debit"),
    "pm_card_mastercard": TestCard("mastercard", "4444"),
    "pm_card_amex": TestCard("amex", "8431"),
    "pm_card_chargeDeclined": TestCard(
        "visa", "0002", attach_decline="generic_decline", charge_decline="generic_decline"
    ),
    "pm_card_chargeDeclinedInsufficientFunds": TestCard(
        "visa", "9995", attach_decline="insufficient_funds", charge_decline="insufficient_funds"
    ),
    "pm_card_chargeDeclinedExpiredCard": TestCard(
        "visa",
        "0069",
        attach_decline="expired_card",
        charge_decline="expired_card",
        decline_error_code="expired_card",
    ),
    "pm_card_chargeCustomerFail": TestCard("visa", "0341", charge_decline="generic_decline"),
}

TEST_NUMBERS: dict[str, str] = {
    "4242424242424242": "pm_card_visa",
    "4000056655665556": "pm_card_visa_debit",
    "5555555555554444": "pm_card_mastercard",
    "378282246310005": "pm_card_amex",
    "4000000000000002": "pm_card_chargeDeclined",
    "4000000000009995": "pm_card_chargeDeclinedInsufficientFunds",
    "4000000000000069": "pm_card_chargeDeclinedExpiredCard",
    "4000000000000341": "pm_card_chargeCustomerFail",
}

DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
}


def _new_card_pm(state: EmulatorState, card: TestCard, extra: dict[str, Any]) -> StoredObject:
    pm: StoredObject = {
        "id": new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": card.brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "unchecked",
            },
            "country": "US",
            "display_brand": card.brand,
            "exp_month": 12,
            "exp_year": dt_year(state) + 3,
            "fingerprint": secrets.token_hex(8),
            "funding": card.funding,
            "generated_from": None,
            "last4": card.last4,
            "networks": {"available": [card.brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": state.now(),
        "customer": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_card": card,
    }
    for key in ("billing_details", "metadata", "allow_redisplay"):
        if key in extra and extra[key] not in (None, EMPTY):
            if key == "billing_details":
                pm["billing_details"].update({k: v for k, v in extra[key].items() if k != "address"})
                if isinstance(extra[key].get("address"), dict):
                    pm["billing_details"]["address"].update(extra[key]["address"])
            else:
                pm[key] = extra[key]
    return put(state, pm)


def dt_year(state: EmulatorState) -> int:
    return dt.datetime.fromtimestamp(state.now(), dt.UTC).year


def resolve_payment_method(state: EmulatorState, pm_id: Any, param: str) -> StoredObject:
    """A stored PaymentMethod; a test token (``pm_card_visa``) makes a fresh one."""
    if isinstance(pm_id, str) and pm_id in TEST_TOKENS:
        return _new_card_pm(state, TEST_TOKENS[pm_id], {})
    return get(state, "payment_method", pm_id, param=param)


def card_of(pm: StoredObject) -> TestCard:
    card = pm.get("_card")
    return card if isinstance(card, TestCard) else TEST_TOKENS["pm_card_visa"]


def decline_error(card: TestCard, decline_code: str, extra: dict[str, Any] | None = None) -> Any:
    code = card.decline_error_code
    return card_error(
        DECLINE_MESSAGES.get(decline_code, "Your card was declined."),
        code=code,
        decline_code=None if code == "expired_card" else decline_code,
        extra=extra,
    )


def attach_payment_method(state: EmulatorState, pm: StoredObject, customer: StoredObject) -> StoredObject:
    if pm.get("customer") and pm["customer"] != customer["id"]:
        raise state_error(
            "The payment method you provided has already been attached to a customer.",
            param="payment_method",
        )
    card = card_of(pm)
    if card.attach_decline:
        raise decline_error(card, card.attach_decline, {"param": None})
    if pm.get("customer") != customer["id"]:
        pm["customer"] = customer["id"]
        emit(state, "payment_method.attached", pm)
    return pm


def customer_payment_method(state: EmulatorState, customer: StoredObject, pm_id: Any, param: str) -> StoredObject:
    """A PaymentMethod that must already be attached to ``customer`` (as Stripe requires)."""
    pm = state.collection("payment_method").get(pm_id) if isinstance(pm_id, str) else None
    if pm is None or pm.get("customer") != customer["id"]:
        raise invalid(
            f"The customer does not have a payment method with the ID {pm_id}. The payment "
            "method must be attached to the customer.",
            param=param,
            code="resource_missing",
        )
    return pm


@route("POST", "/v1/payment_methods", p.PaymentMethodCreateParams)
def create_payment_method(ctx: Ctx) -> dict[str, Any]:
    params = ctx.params
    if params.get("type") not in (None, "card"):
        raise invalid("The emulator only supports card payment methods.", param="type")
    card_params = params.get("card") or {}
    token: str | None = None
    if isinstance(card_params, dict):
        if card_params.get("token"):
            token = {"tok_visa": "pm_card_visa", "tok_chargeDeclined": "pm_card_chargeDeclined"}.get(
                card_params["token"], "pm_card_visa"
            )
        elif card_params.get("number"):
            number = str(card_params["number"]).replace(" ", "")
            token = TEST_NUMBERS.get(number)
            if token is None:
                raise card_error(
                    "Your card number is incorrect.",
                    code="incorrect_number",
                    decline_code=None,
                    param="card[number]",
                )
    if params.get("payment_method"):
        token = params["payment_method"] if params["payment_method"] in TEST_TOKENS else None
    pm = _new_card_pm(ctx.state, TEST_TOKENS[token or "pm_card_visa"], params)
    if isinstance(card_params, dict):
        for key in ("exp_month", "exp_year"):
            if isinstance(card_params.get(key), int):
                pm["card"][key] = card_params[key]
    return render(ctx.state, pm)


@route("GET", "/v1/payment_methods/{payment_method}", p.PaymentMethodRetrieveParams)
def retrieve_payment_method(ctx: Ctx) -> dict[str, Any]:
    pm = resolve_payment_method(ctx.state, ctx.path["payment_method"], "id")
    return render(ctx.state, pm)


@route("POST", "/v1/payment_methods/{payment_method}", p.PaymentMethodUpdateParams)
def update_payment_method(ctx: Ctx) -> dict[str, Any]:
    pm = get(ctx.state, "payment_method", ctx.path["payment_method"])
    before = render(ctx.state, pm)
    params = ctx.params
    if "metadata" in params:
        pm["metadata"] = merge_metadata(pm.get("metadata"), params["metadata"])
    if isinstance(params.get("billing_details"), dict):
        details = params["billing_details"]
        pm["billing_details"].update({k: unset(v) for k, v in details.items() if k != "address"})
        if isinstance(details.get("address"), dict):
            pm["billing_details"]["address"].update(details["address"])
    if isinstance(params.get("card"), dict):
        for key in ("exp_month", "exp_year"):
            if key in params["card"]:
                pm["card"][key] = params["card"][key]
    after = render(ctx.state, pm)
    emit(ctx.state, "payment_method.updated", pm, diff(before, after))
    return after


@route("POST", "/v1/payment_methods/{payment_method}/attach", p.PaymentMethodAttachParams)
def attach_payment_method_endpoint(ctx: Ctx) -> dict[str, Any]:
    customer = get(ctx.state, "customer", require(ctx.params, "customer"), param="customer")
    pm = resolve_payment_method(ctx.state, ctx.path["payment_method"], "id")
    attach_payment_method(ctx.state, pm, customer)
    return render(ctx.state, pm)


@route("POST", "/v1/payment_methods/{payment_method}/detach", p.PaymentMethodDetachParams)
def detach_payment_method(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    pm = get(state, "payment_method", ctx.path["payment_method"])
    if not pm.get("customer"):
        raise state_error(
            "The payment method you provided is not attached to a customer so detachment is impossible.",
            param="payment_method",
        )
    customer = state.collection("customer").get(pm["customer"])
    pm["customer"] = None
    if customer is not None:
        settings = customer["invoice_settings"]
        if settings.get("default_payment_method") == pm["id"]:
            before = render(state, customer)
            settings["default_payment_method"] = None
            emit(state, "customer.updated", customer, diff(before, render(state, customer)))
    emit(state, "payment_method.detached", pm, {"customer": customer["id"] if customer else None})
    return render(state, pm)


@route("GET", "/v1/payment_methods", p.PaymentMethodListParams)
def list_payment_methods(ctx: Ctx) -> dict[str, Any]:
    objects = list(ctx.state.collection("payment_method").values())
    if ctx.params.get("customer"):
        objects = [o for o in objects if o.get("customer") == ctx.params["customer"]]
    if ctx.params.get("type"):
        objects = [o for o in objects if o.get("type") == ctx.params["type"]]
    return paginate(ctx.state, objects, ctx.params, "/v1/payment_methods")


@route("GET", "/v1/customers/{customer}/payment_methods", p.CustomerPaymentMethodListParams)
def list_customer_payment_methods(ctx: Ctx) -> dict[str, Any]:
    customer = get(ctx.state, "customer", ctx.path["customer"])
    objects = [o for o in ctx.state.collection("payment_method").values() if o.get("customer") == customer["id"]]
    if ctx.params.get("type"):
        objects = [o for o in objects if o.get("type") == ctx.params["type"]]
    return paginate(ctx.state, objects, ctx.params, f"/v1/customers/{customer['id']}/payment_methods")


@route(
    "GET",
    "/v1/customers/{customer}/payment_methods/{payment_method}",
    p.CustomerPaymentMethodRetrieveParams,
)
def retrieve_customer_payment_method(ctx: Ctx) -> dict[str, Any]:
    customer = get(ctx.state, "customer", ctx.path["customer"])
    pm = get(ctx.state, "payment_method", ctx.path["payment_method"])
    if pm.get("customer") != customer["id"]:
        raise invalid(f"No such PaymentMethod: '{pm['id']}'", param="payment_method", code="resource_missing")
    return render(ctx.state, pm)


# --------------------------------------------------------------------------------------------
# Customers

_PLAIN_FIELDS = (
    "business_name",
    "description",
    "email",
    "individual_name",
    "name",
    "phone",
    "preferred_locales",
    "tax_exempt",
    "next_invoice_sequence",
)
_ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")


def _address(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {k: value.get(k) for k in _ADDRESS_KEYS}


def _apply_customer_fields(
    state: EmulatorState, customer: StoredObject, params: dict[str, Any], tokens: dict[str, str]
) -> None:
    for key in _PLAIN_FIELDS:
        if key in params:
            customer[key] = unset(params[key])
    if customer.get("preferred_locales") is None:
        customer["preferred_locales"] = []
    if customer.get("tax_exempt") is None:
        customer["tax_exempt"] = "none"
    if "address" in params:
        address = params["address"]
        if address == EMPTY:
            customer["address"] = None
        else:
            merged = dict(customer.get("address") or dict.fromkeys(_ADDRESS_KEYS))
            merged.update(address)
            customer["address"] = _address(merged)
    if "shipping" in params:
        shipping = params["shipping"]
        if shipping == EMPTY:
            customer["shipping"] = None
        else:
            customer["shipping"] = {
                "address": _address(shipping.get("address")),
                "carrier": None,
                "name": shipping.get("name"),
                "phone": shipping.get("phone"),
                "tracking_number": None,
            }
    if "metadata" in params:
        customer["metadata"] = merge_metadata(customer.get("metadata"), params["metadata"])
    if "invoice_prefix" in params:
        prefix = params["invoice_prefix"]
        if not (1 <= len(prefix) <= 12 and prefix.isalnum() and prefix.upper() == prefix):
            raise invalid("Invoice prefix must be 1-12 uppercase letters or numbers.", param="invoice_prefix")
        customer["invoice_prefix"] = prefix
    if "balance" in params:
        customer["balance"] = params["balance"]
    if "tax" in params and isinstance(params["tax"], dict):
        customer["_tax"] = params["tax"]
    settings = params.get("invoice_settings")
    if isinstance(settings, dict):
        target = customer["invoice_settings"]
        if "default_payment_method" in settings:
            pm_id = unset(settings["default_payment_method"])
            if pm_id is not None:
                pm_id = tokens.get(pm_id, pm_id)
                pm = customer_payment_method(state, customer, pm_id, "invoice_settings[default_payment_method]")
                pm_id = pm["id"]
            target["default_payment_method"] = pm_id
        if "footer" in settings:
            target["footer"] = unset(settings["footer"])
        if "custom_fields" in settings:
            target["custom_fields"] = unset(settings["custom_fields"]) or None
        if "rendering_options" in settings:
            target["rendering_options"] = unset(settings["rendering_options"]) or None


@renderer("customer")
def _render_customer(state: EmulatorState, obj: StoredObject, out: dict[str, Any]) -> None:
    out["delinquent"] = any(
        inv.get("customer") == obj["id"] and inv.get("status") == "open" and (inv.get("attempt_count") or 0) > 0
        for inv in state.collection("invoice").values()
    )


@route("POST", "/v1/customers", p.CustomerCreateParams)
def create_customer(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    customer: StoredObject = {
        "id": new_id("cus", 14),
        "object": "customer",
        "address": None,
        "balance": 0,
        "business_name": None,
        "created": ctx.now,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "individual_name": None,
        "invoice_credit_balance": {},
        "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    tokens: dict[str, str] = {}
    if ctx.params.get("payment_method"):
        token = ctx.params["payment_method"]
        pm = resolve_payment_method(state, token, "payment_method")
        card = card_of(pm)
        if card.attach_decline:
            raise decline_error(card, card.attach_decline)
        pm["customer"] = customer["id"]
        tokens[token] = pm["id"]
    _apply_customer_fields(state, customer, ctx.params, tokens)
    put(state, customer)
    emit(state, "customer.created", customer)
    for pm_id in tokens.values():
        emit(state, "payment_method.attached", state.collection("payment_method")[pm_id])
    return render(state, customer)


@route("GET", "/v1/customers/{customer}", p.CustomerRetrieveParams)
def retrieve_customer(ctx: Ctx) -> dict[str, Any]:
    customer = get(ctx.state, "customer", ctx.path["customer"], allow_deleted=True)
    return render(ctx.state, customer)


@route("POST", "/v1/customers/{customer}", p.CustomerUpdateParams)
def update_customer(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    customer = get(state, "customer", ctx.path["customer"])
    before = render(state, customer)
    tokens: dict[str, str] = {}
    _apply_customer_fields(state, customer, ctx.params, tokens)
    after = render(state, customer)
    changes = diff(before, after)
    if changes:
        emit(state, "customer.updated", customer, changes)
    return after


@route("DELETE", "/v1/customers/{customer}", p.CustomerDeleteParams)
def delete_customer(ctx: Ctx) -> dict[str, Any]:
    from .subscriptions import cancel_subscription_now

    state = ctx.state
    customer = get(state, "customer", ctx.path["customer"])
    for sub in list(state.collection("subscription").values()):
        if sub["customer"] == customer["id"] and sub["status"] not in (
            "canceled",
            "incomplete_expired",
        ):
            cancel_subscription_now(state, sub, reason="cancellation_requested")
    snapshot = render(state, customer)
    stub = {"id": customer["id"], "object": "customer", "deleted": True}
    state.collection("customer")[customer["id"]] = stub
    emit(state, "customer.deleted", snapshot)
    return dict(stub)


@route("GET", "/v1/customers", p.CustomerListParams)
def list_customers(ctx: Ctx) -> dict[str, Any]:
    objects = [o for o in ctx.state.collection("customer").values() if not o.get("deleted")]
    if ctx.params.get("email"):
        objects = [o for o in objects if o.get("email") == ctx.params["email"]]
    return paginate(ctx.state, objects, ctx.params, "/v1/customers")


# --------------------------------------------------------------------------------------------
# Customer balance transactions


def add_balance_transaction(
    state: EmulatorState,
    customer: StoredObject,
    amount: int,
    currency: str,
    *,
    kind: str = "adjustment",
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    invoice: str | None = None,
) -> StoredObject:
    before = render(state, customer)
    customer["balance"] = (customer.get("balance") or 0) + amount
    if customer.get("currency") is None:
        customer["currency"] = currency
    txn: StoredObject = {
        "id": new_id("cbtxn"),
        "object": "customer_balance_transaction",
        "amount": amount,
        "checkout_session": None,
        "created": state.now(),
        "credit_note": None,
        "currency": currency,
        "customer": customer["id"],
        "customer_account": None,
        "description": description,
        "ending_balance": customer["balance"],
        "invoice": invoice,
        "livemode": False,
        "metadata": metadata or {},
        "type": kind,
    }
    put(state, txn)
    emit(state, "customer.updated", customer, diff(before, render(state, customer)))
    return txn


@route(
    "POST",
    "/v1/customers/{customer}/balance_transactions",
    p.CustomerBalanceTransactionCreateParams,
)
def create_balance_transaction(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    customer = get(state, "customer", ctx.path["customer"])
    amount = ctx.params["amount"]
    currency = check_currency(ctx.params["currency"])
    if amount == 0:
        raise invalid("The amount must be a non-zero integer.", param="amount")
    if customer.get("currency") and customer["currency"] != currency:
        raise invalid(
            f"The currency {currency} does not match the customer's currency {customer['currency']}.",
            param="currency",
        )
    txn = add_balance_transaction(
        state,
        customer,
        amount,
        currency,
        description=unset(ctx.params.get("description")),
        metadata=merge_metadata({}, ctx.params.get("metadata", {})),
    )
    return render(state, txn)


def _customer_txn(ctx: Ctx) -> StoredObject:
    customer = get(ctx.state, "customer", ctx.path["customer"])
    txn = get(ctx.state, "customer_balance_transaction", ctx.path["transaction"])
    if txn["customer"] != customer["id"]:
        raise invalid(
            f"No such customer balance transaction: '{txn['id']}'",
            param="id",
            code="resource_missing",
        )
    return txn


@route(
    "GET",
    "/v1/customers/{customer}/balance_transactions/{transaction}",
    p.CustomerBalanceTransactionRetrieveParams,
)
def retrieve_balance_transaction(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, _customer_txn(ctx))


@route(
    "POST",
    "/v1/customers/{customer}/balance_transactions/{transaction}",
    p.CustomerBalanceTransactionUpdateParams,
)
def update_balance_transaction(ctx: Ctx) -> dict[str, Any]:
    txn = _customer_txn(ctx)
    if "description" in ctx.params:
        txn["description"] = unset(ctx.params["description"])
    if "metadata" in ctx.params:
        txn["metadata"] = merge_metadata(txn.get("metadata"), ctx.params["metadata"])
    return render(ctx.state, txn)


@route(
    "GET",
    "/v1/customers/{customer}/balance_transactions",
    p.CustomerBalanceTransactionListParams,
)
def list_balance_transactions(ctx: Ctx) -> dict[str, Any]:
    customer = get(ctx.state, "customer", ctx.path["customer"])
    objects = [
        o for o in ctx.state.collection("customer_balance_transaction").values() if o["customer"] == customer["id"]
    ]
    if ctx.params.get("invoice"):
        objects = [o for o in objects if o.get("invoice") == ctx.params["invoice"]]
    return paginate(ctx.state, objects, ctx.params, f"/v1/customers/{customer['id']}/balance_transactions")
