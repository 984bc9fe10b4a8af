"""Subscriptions and their items: creation, updates with prorations, renewals, trials, pauses,
cancellations, and ``invoices.create_preview`` (computed by running the same update on a copy
of the state, so the preview always equals what the real update produces)."""

from __future__ import annotations

from typing import Any

from stripe import params as p

from ..core import (
    Ctx,
    add_interval,
    diff,
    emit,
    format_amount,
    format_date,
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
from .catalog import create_discounts, discount_active, inline_price
from .customers import customer_payment_method
from .invoices import (
    _round_half_up,
    add_pending_items,
    advance,
    compute_totals,
    finalize,
    invoice_subscription,
    make_line,
    mark_uncollectible,
    new_invoice,
    new_invoice_item,
    pay,
    void,
)
from .meters import usage_for

TIMES = "\u00d7"  # the multiplication sign Stripe writes in line descriptions
TRIAL_WILL_END_NOTICE = 3 * 86400
INCOMPLETE_EXPIRY = 23 * 3600
LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid")

# --------------------------------------------------------------------------------------------
# Helpers


def items_of(state: EmulatorState, sub: StoredObject) -> list[StoredObject]:
    return [state.collection("subscription_item")[i] for i in sub["_items"]]


def price_of(state: EmulatorState, item: StoredObject) -> StoredObject:
    return state.collection("price")[item["price"]]


def product_name(state: EmulatorState, price: StoredObject) -> str:
    product = state.collection("product").get(price["product"]) or {}
    return str(product.get("name") or price["product"])


def is_metered(price: StoredObject) -> bool:
    return bool(price.get("recurring") and price["recurring"]["usage_type"] == "metered")


def set_period(state: EmulatorState, sub: StoredObject, start: int, end: int) -> None:
    sub["_period"] = [start, end]
    for item in items_of(state, sub):
        item["current_period_start"] = start
        item["current_period_end"] = end


def cycle_end(sub: StoredObject, cycle: int) -> int:
    interval, count = sub["_interval"]
    return add_interval(sub["_anchor"], interval, count * cycle)


def prorate(amount: int, remaining: int, length: int) -> int:
    """``amount`` scaled by ``remaining / length`` seconds, rounded half up to minor units."""
    if length <= 0:
        return 0
    return _round_half_up(amount * remaining, length)


def _plan(price: StoredObject) -> dict[str, Any]:
    recurring = price.get("recurring") or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": dict(price.get("metadata") or {}),
        "meter": recurring.get("meter"),
        "nickname": price.get("nickname"),
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }


@renderer("subscription_item")
def _render_item(state: EmulatorState, obj: StoredObject, out: dict[str, Any]) -> None:
    price = state.collection("price")[obj["price"]]
    out["price"] = render(state, price)
    out["plan"] = _plan(price)


@renderer("subscription")
def _render_subscription(state: EmulatorState, obj: StoredObject, out: dict[str, Any]) -> None:
    items = [render(state, item) for item in items_of(state, obj)]
    out["items"] = {
        "object": "list",
        "data": items,
        "has_more": False,
        "total_count": len(items),
        "url": f"/v1/subscription_items?subscription={obj['id']}",
    }
    # Current API versions keep periods on items; the emulator mirrors them on the subscription
    # as a convenience (the SDK's typed Subscription has no such attributes).
    out["current_period_start"], out["current_period_end"] = obj["_period"]


def _emit_updated(state: EmulatorState, sub: StoredObject, before: dict[str, Any]) -> None:
    after = render(state, sub)
    changes = diff(before, after)
    if changes:
        emit(state, "customer.subscription.updated", sub, changes)


def _default_pm(state: EmulatorState, sub: StoredObject) -> StoredObject | None:
    candidates = [sub.get("default_payment_method")]
    customer = state.collection("customer").get(sub["customer"])
    if customer is not None and not customer.get("deleted"):
        candidates.append(customer["invoice_settings"].get("default_payment_method"))
    for pm_id in candidates:
        if pm_id and pm_id in state.collection("payment_method"):
            return state.collection("payment_method")[pm_id]
    return None


def _expected_due(state: EmulatorState, invoice: StoredObject) -> int:
    customer = state.collection("customer").get(invoice["customer"]) or {}
    balance = customer.get("balance") or 0
    return max(invoice["total"] + balance, 0) if invoice["total"] > 0 else 0


# --------------------------------------------------------------------------------------------
# Invoice lines for subscriptions


def _item_parent(sub: StoredObject, item: StoredObject) -> dict[str, Any]:
    return {
        "invoice_item_details": None,
        "subscription_item_details": {
            "invoice_item": None,
            "proration": False,
            "proration_details": {"credited_items": None},
            "subscription": sub["id"],
            "subscription_item": item["id"],
        },
        "type": "subscription_item_details",
    }


def licensed_lines(
    state: EmulatorState,
    sub: StoredObject,
    invoice: StoredObject,
    start: int,
    end: int,
    *,
    trial: bool = False,
    stub_length: int | None = None,
) -> None:
    for item in items_of(state, sub):
        price = price_of(state, item)
        if is_metered(price):
            continue
        quantity = item.get("quantity") or 0
        name = product_name(state, price)
        full = price["unit_amount"] * quantity
        if trial:
            amount, description = 0, f"Trial period for {name}"
        elif stub_length is not None:
            amount = prorate(full, end - start, stub_length)
            description = f"Remaining time on {quantity} {TIMES} {name} after {format_date(start)}"
        else:
            amount = full
            recurring = price["recurring"]
            per = recurring["interval"]
            if recurring["interval_count"] != 1:
                per = f"every {recurring['interval_count']} {per}s"
            description = (
                f"{quantity} {TIMES} {name} (at {format_amount(price['unit_amount'], price['currency'])} / {per})"
            )
        invoice["_lines"].append(
            make_line(
                invoice_id=invoice["id"],
                amount=amount,
                currency=invoice["currency"],
                description=description,
                period=(start, end),
                price=price,
                quantity=quantity,
                parent=_item_parent(sub, item),
                metadata=dict(item.get("metadata") or {}),
            )
        )


def usage_lines(state: EmulatorState, sub: StoredObject, invoice: StoredObject, start: int, end: int) -> None:
    for item in items_of(state, sub):
        price = price_of(state, item)
        if not is_metered(price):
            continue
        usage = usage_for(state, price["recurring"]["meter"], sub["customer"], start, end)
        quantity = round(usage)
        amount = round(price["unit_amount"] * usage)
        name = product_name(state, price)
        invoice["_lines"].append(
            make_line(
                invoice_id=invoice["id"],
                amount=amount,
                currency=invoice["currency"],
                description=f"{quantity} {TIMES} {name} (usage, at "
                f"{format_amount(price['unit_amount'], price['currency'])} / unit)",
                period=(start, end),
                price=price,
                quantity=quantity,
                parent=_item_parent(sub, item),
            )
        )


def _apply_discounts(state: EmulatorState, sub: StoredObject, invoice: StoredObject, at: int) -> None:
    applied = []
    for discount_id in sub["discounts"]:
        discount = state.collection("discount").get(discount_id)
        if discount is not None and discount_active(discount, at):
            applied.append(discount_id)
    invoice["discounts"] = applied + [d for d in invoice["discounts"] if d not in applied]
    for discount_id in applied:
        discount = state.collection("discount")[discount_id]
        if discount.get("_once"):
            discount["_used_up"] = True
    sub["discounts"] = [d for d in sub["discounts"] if not state.collection("discount").get(d, {}).get("_used_up")]


def _subscription_invoice(
    state: EmulatorState,
    sub: StoredObject,
    billing_reason: str,
    period: tuple[int, int],
    proration_date: int | None = None,
) -> StoredObject:
    customer = state.collection("customer")[sub["customer"]]
    invoice = new_invoice(
        state,
        customer,
        currency=sub["currency"],
        billing_reason=billing_reason,
        subscription=sub,
        period=period,
        proration_date=proration_date,
    )
    sub["latest_invoice"] = invoice["id"]
    return invoice


def _collect(state: EmulatorState, sub: StoredObject, invoice: StoredObject) -> StripeError | None:
    """Finalize and collect a subscription invoice, honouring ``pause_collection``."""
    compute_totals(state, invoice)
    emit(state, "invoice.created", invoice)
    pause = sub.get("pause_collection")
    if pause and not state.dry_run:
        behavior = pause["behavior"]
        if behavior == "keep_as_draft":
            invoice["auto_advance"] = False
            return None
        finalize(state, invoice)
        if invoice["status"] == "open":
            if behavior == "void":
                void(state, invoice)
            else:
                mark_uncollectible(state, invoice)
        return None
    error = advance(state, invoice)
    state.last_payment_error = error
    return error


# --------------------------------------------------------------------------------------------
# Status hooks called from invoices


def _open_attempted(state: EmulatorState, sub: StoredObject) -> bool:
    return any(
        (inv.get("parent") or {}).get("subscription_details", {}).get("subscription") == sub["id"]
        and inv.get("status") == "open"
        and inv.get("attempt_count", 0) > 0
        for inv in state.collection("invoice").values()
        if not inv.get("deleted") and inv.get("parent")
    )


def on_invoice_paid(state: EmulatorState, invoice: StoredObject) -> None:
    sub = invoice_subscription(state, invoice)
    if sub is None or sub["status"] not in ("incomplete", "past_due", "unpaid"):
        return
    if _open_attempted(state, sub):
        return
    before = render(state, sub)
    trialing = sub.get("trial_end") and sub["trial_end"] > state.now()
    sub["status"] = "trialing" if trialing else "active"
    _emit_updated(state, sub, before)


def on_invoice_payment_failed(state: EmulatorState, invoice: StoredObject) -> None:
    sub = invoice_subscription(state, invoice)
    if sub is None or sub["status"] != "active":
        return
    before = render(state, sub)
    sub["status"] = "past_due"
    _emit_updated(state, sub, before)


def on_invoice_closed(state: EmulatorState, invoice: StoredObject) -> None:
    on_invoice_paid(state, invoice)


# --------------------------------------------------------------------------------------------
# Create


def _resolve_item_price(state: EmulatorState, spec: dict[str, Any], where: str) -> StoredObject:
    price_id = spec.get("price") or spec.get("plan")
    if price_id:
        price = get(state, "price", price_id, param=f"{where}[price]")
    elif isinstance(spec.get("price_data"), dict):
        price = inline_price(state, spec["price_data"], f"{where}[price_data]", recurring=True)
    else:
        raise invalid(f"Missing required param: {where}[price].", param=f"{where}[price]", code="parameter_missing")
    if price.get("type") != "recurring":
        raise invalid(
            "The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`.",
            param=f"{where}[price]",
        )
    if not price["active"] and spec.get("price"):
        raise invalid(f"The price specified is inactive: {price['id']}", param=f"{where}[price]")
    return price


def _new_item(
    state: EmulatorState,
    sub: StoredObject,
    price: StoredObject,
    quantity: int | None,
    metadata: Any,
    where: str,
) -> StoredObject:
    if is_metered(price):
        if quantity is not None:
            raise invalid("Quantity should not be specified where usage_type is `metered`.", param=f"{where}[quantity]")
    else:
        quantity = 1 if quantity is None else quantity
        if quantity < 0:
            raise invalid(
                "This value must be greater than or equal to 0.",
                param=f"{where}[quantity]",
                code="parameter_invalid_integer",
            )
    start, end = sub["_period"]
    item: StoredObject = {
        "id": new_id("si", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": state.now(),
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": merge_metadata({}, metadata or {}),
        "price": price["id"],
        "quantity": quantity,
        "subscription": sub["id"],
        "tax_rates": [],
    }
    return put(state, item)


def _check_interval(prices: list[StoredObject], param: str) -> tuple[str, int]:
    intervals = {(pr["recurring"]["interval"], pr["recurring"]["interval_count"]) for pr in prices}
    currencies = {pr["currency"] for pr in prices}
    if len(intervals) > 1:
        raise invalid(
            "All prices on a subscription must have the same `recurring.interval` and `recurring.interval_count`.",
            param=param,
        )
    if len(currencies) > 1:
        raise invalid("All prices on a subscription must have the same currency.", param=param)
    return intervals.pop()


def create_subscription_in(state: EmulatorState, params: dict[str, Any]) -> StoredObject:
    """Create a subscription with its first invoice; returns the stored subscription."""
    now = state.now()
    customer = get(state, "customer", require(params, "customer"), param="customer")
    specs = params.get("items") or []
    if not specs:
        raise invalid("Missing required param: items.", param="items", code="parameter_missing")
    prices = [_resolve_item_price(state, spec, f"items[{i}]") for i, spec in enumerate(specs)]
    interval = _check_interval(prices, "items")
    currency = prices[0]["currency"]
    if params.get("currency") and params["currency"].lower() != currency:
        raise invalid("The currency must match the prices' currency.", param="currency")
    if customer.get("currency") and customer["currency"] != currency:
        raise invalid(
            f"You cannot combine currencies on a single customer. This customer has had a "
            f"subscription or payment in {customer['currency']}, but you are trying to pay in "
            f"{currency}.",
            param="currency",
        )
    collection_method = params.get("collection_method", "charge_automatically")
    if collection_method == "send_invoice" and params.get("days_until_due") is None:
        raise invalid("Missing required param: days_until_due.", param="days_until_due", code="parameter_missing")
    default_pm = None
    if params.get("default_payment_method"):
        default_pm = customer_payment_method(
            state, customer, params["default_payment_method"], "default_payment_method"
        )["id"]
    trial_end = None
    trial_end_param = params.get("trial_end")
    if isinstance(trial_end_param, int):
        if trial_end_param <= now:
            raise invalid("Invalid timestamp: must be an integer Unix timestamp in the future.", param="trial_end")
        trial_end = trial_end_param
    elif trial_end_param is None and params.get("trial_period_days"):
        trial_end = now + 86400 * params["trial_period_days"]
    elif trial_end_param is None and params.get("trial_from_plan"):
        days = prices[0]["recurring"].get("trial_period_days")
        trial_end = now + 86400 * days if days else None
    anchor_param = params.get("billing_cycle_anchor")
    if trial_end is not None:
        anchor, cycle, period = trial_end, 0, (now, trial_end)
    elif isinstance(anchor_param, int) and anchor_param > now:
        anchor, cycle, period = anchor_param, 0, (now, anchor_param)
    else:
        anchor, cycle = now, 1
        period = (now, add_interval(now, interval[0], interval[1]))
    trial_settings = params.get("trial_settings") or {}
    missing_pm = (trial_settings.get("end_behavior") or {}).get("missing_payment_method", "create_invoice")
    sub: StoredObject = {
        "id": new_id("sub"),
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": anchor,
        "billing_cycle_anchor_config": None,
        "billing_mode": {
            "flexible": {"proration_discounts": "included"},
            "type": "flexible",
            "updated_at": None,
        },
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": collection_method,
        "created": now,
        "currency": currency,
        "customer": customer["id"],
        "customer_account": None,
        "days_until_due": params.get("days_until_due"),
        "default_payment_method": default_pm,
        "default_source": None,
        "default_tax_rates": [],
        "description": params.get("description"),
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "latest_invoice": None,
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata", {})),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "incomplete",
        "status_details": None,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": missing_pm}},
        "trial_start": now if trial_end else None,
        "_items": [],
        "_period": list(period),
        "_anchor": anchor,
        "_cycle": cycle,
        "_interval": list(interval),
        "_trial_will_end_sent": False,
    }
    put(state, sub)
    for index, (spec, price) in enumerate(zip(specs, prices, strict=True)):
        item = _new_item(state, sub, price, spec.get("quantity"), spec.get("metadata"), f"items[{index}]")
        sub["_items"].append(item["id"])
    sub["discounts"] = create_discounts(
        state,
        params.get("discounts"),
        customer=customer["id"],
        param="discounts",
        subscription=sub["id"],
        currency=currency,
    )
    if params.get("cancel_at_period_end"):
        sub["cancel_at_period_end"] = True
        sub["cancel_at"] = period[1]
    elif isinstance(params.get("cancel_at"), int):
        sub["cancel_at"] = params["cancel_at"]
    if customer.get("currency") is None:
        customer["currency"] = currency
    # The first invoice.
    invoice = _subscription_invoice(state, sub, "subscription_create", period)
    if trial_end is not None:
        licensed_lines(state, sub, invoice, now, trial_end, trial=True)
    elif cycle == 0:
        stub = (
            None
            if params.get("proration_behavior") == "none"
            else anchor - add_interval(anchor, interval[0], -interval[1])
        )
        if stub is not None:
            licensed_lines(state, sub, invoice, now, anchor, stub_length=stub)
    else:
        licensed_lines(state, sub, invoice, period[0], period[1])
    for index, extra in enumerate(params.get("add_invoice_items") or []):
        where = f"add_invoice_items[{index}]"
        if extra.get("price"):
            price = get(state, "price", extra["price"], param=f"{where}[price]")
        elif isinstance(extra.get("price_data"), dict):
            price = inline_price(state, extra["price_data"], f"{where}[price_data]", recurring=False)
        else:
            raise invalid(f"Missing required param: {where}[price].", param=f"{where}[price]", code="parameter_missing")
        qty = extra.get("quantity", 1)
        ii = new_invoice_item(
            state,
            customer,
            amount=price["unit_amount"] * qty,
            currency=currency,
            description=product_name(state, price),
            period=(now, now),
            quantity=qty,
            price=price,
            subscription=sub["id"],
        )
        ii["invoice"] = invoice["id"]
        from .invoices import line_from_invoice_item

        invoice["_lines"].append(line_from_invoice_item(ii, invoice["id"]))
    add_pending_items(state, invoice, subscription_id=sub["id"], only_subscription=False)
    _apply_discounts(state, sub, invoice, now)
    compute_totals(state, invoice)

    behavior = params.get("payment_behavior", "allow_incomplete")
    if trial_end is not None:
        sub["status"] = "trialing"
    elif _expected_due(state, invoice) == 0 or collection_method == "send_invoice":
        sub["status"] = "active"
    emit(state, "customer.subscription.created", sub)
    if behavior == "default_incomplete":
        emit(state, "invoice.created", invoice)
        if not state.dry_run:
            finalize(state, invoice)
    else:
        error = _collect(state, sub, invoice)
        if error is not None and behavior == "error_if_incomplete":
            raise error  # the dispatcher rolls the whole creation back
    if trial_end is not None and trial_end - now <= TRIAL_WILL_END_NOTICE:
        sub["_trial_will_end_sent"] = True
        emit(state, "customer.subscription.trial_will_end", sub)
    return sub


@route("POST", "/v1/subscriptions", p.SubscriptionCreateParams)
def create_subscription(ctx: Ctx) -> dict[str, Any]:
    sub = create_subscription_in(ctx.state, ctx.params)
    return render(ctx.state, sub)


# --------------------------------------------------------------------------------------------
# Update


def _proration_item(
    state: EmulatorState,
    sub: StoredObject,
    item: StoredObject,
    price: StoredObject,
    quantity: int,
    sign: int,
    proration_date: int,
) -> StoredObject | None:
    start, end = sub["_period"]
    amount = sign * prorate(price["unit_amount"] * quantity, end - proration_date, end - start)
    if quantity == 0:
        return None
    word = "Unused" if sign < 0 else "Remaining"
    customer = state.collection("customer")[sub["customer"]]
    return new_invoice_item(
        state,
        customer,
        amount=amount,
        currency=sub["currency"],
        description=(
            f"{word} time on {quantity} {TIMES} {product_name(state, price)} after {format_date(proration_date)}"
        ),
        period=(proration_date, end),
        quantity=quantity,
        price=price,
        subscription=sub["id"],
        subscription_item=item["id"],
        proration=True,
    )


def apply_update(state: EmulatorState, sub: StoredObject, params: dict[str, Any]) -> StoredObject | None:
    """Apply a subscription update in place. Returns the invoice it created immediately, if any."""
    now = state.now()
    if sub["status"] in ("canceled", "incomplete_expired"):
        allowed = {"metadata", "cancellation_details", "expand"}
        if set(params) - allowed:
            raise state_error(
                "A canceled subscription can only update its cancellation_details and metadata.",
                param=sorted(set(params) - allowed)[0],
            )
    customer = state.collection("customer")[sub["customer"]]
    start, end = sub["_period"]
    behavior = params.get("proration_behavior", "create_prorations")
    proration_date = params.get("proration_date", now)
    if not start <= proration_date <= end:
        raise invalid("proration_date must be within the subscription's current period.", param="proration_date")

    if "metadata" in params:
        sub["metadata"] = merge_metadata(sub.get("metadata"), params["metadata"])
    for key in ("description", "days_until_due", "collection_method"):
        if key in params:
            sub[key] = unset(params[key])
    if isinstance(params.get("cancellation_details"), dict):
        for key in ("comment", "feedback"):
            if key in params["cancellation_details"]:
                sub["cancellation_details"][key] = unset(params["cancellation_details"][key])
    if "default_payment_method" in params:
        pm_id = unset(params["default_payment_method"])
        if pm_id is not None:
            pm_id = customer_payment_method(state, customer, pm_id, "default_payment_method")["id"]
        sub["default_payment_method"] = pm_id
    if "pause_collection" in params:
        pause = params["pause_collection"]
        sub["pause_collection"] = (
            None
            if pause == EMPTY
            else {
                "behavior": pause["behavior"],
                "resumes_at": pause.get("resumes_at"),
            }
        )
    if "discounts" in params:
        sub["discounts"] = create_discounts(
            state,
            params["discounts"],
            customer=customer["id"],
            param="discounts",
            subscription=sub["id"],
            currency=sub["currency"],
        )

    # Items: collect the changes first so every error surfaces before anything moves.
    changes: list[tuple[StoredObject | None, StoredObject | None, int, StoredObject | None, int]] = []
    new_specs: list[tuple[StoredObject, Any, Any, str]] = []
    removed: list[StoredObject] = []
    current = {item["id"]: item for item in items_of(state, sub)}
    for index, spec in enumerate(params.get("items") or []):
        where = f"items[{index}]"
        if spec.get("id"):
            item = current.get(spec["id"])
            if item is None:
                raise invalid(
                    f"No such subscription item: '{spec['id']}'", param=f"{where}[id]", code="resource_missing"
                )
            old_price = price_of(state, item)
            old_qty = item.get("quantity") or 0
            if spec.get("deleted"):
                changes.append((item, old_price, old_qty, None, 0))
                removed.append(item)
                continue
            new_price = old_price
            if spec.get("price") or spec.get("price_data") or spec.get("plan"):
                new_price = _resolve_item_price(state, spec, where)
            new_qty = spec.get("quantity", old_qty if not is_metered(new_price) else None)
            if new_qty is not None and new_qty < 0:
                raise invalid(
                    "This value must be greater than or equal to 0.",
                    param=f"{where}[quantity]",
                    code="parameter_invalid_integer",
                )
            changes.append((item, old_price, old_qty, new_price, new_qty or 0))
            if "metadata" in spec:
                item["metadata"] = merge_metadata(item.get("metadata"), spec["metadata"])
        else:
            price = _resolve_item_price(state, spec, where)
            new_specs.append((price, spec.get("quantity"), spec.get("metadata"), where))
            changes.append((None, None, 0, price, spec.get("quantity", 1) or 0))
    final_prices = [new_price for item, _op, _oq, new_price, _nq in changes if new_price is not None] + [
        price_of(state, item)
        for item in items_of(state, sub)
        if item not in removed and all(c[0] is not item for c in changes)
    ]
    if params.get("items"):
        if not final_prices:
            raise invalid("A subscription must have at least one active item.", param="items")
        interval = list(_check_interval(final_prices, "items"))
        if final_prices[0]["currency"] != sub["currency"]:
            raise invalid("The price's currency must match the subscription's currency.", param="items")
    else:
        interval = sub["_interval"]
    interval_changed = interval != sub["_interval"]

    reset_anchor = interval_changed or (params.get("billing_cycle_anchor") or {}).get("type") == "now"
    trial_end = params.get("trial_end")
    end_trial_now = trial_end == "now" and sub["status"] == "trialing"
    # Nothing was charged for trial time, so nothing in a trial is prorated.
    in_trial = sub["status"] == "trialing"
    if end_trial_now:
        reset_anchor = True

    # Planned prorations: (item or index of a new item, price, quantity, sign). They are created
    # after the item changes so that debits for new items can point at the new item ids.
    planned: list[tuple[StoredObject | int, StoredObject, int, int]] = []
    prorate_now = behavior != "none" and not in_trial and sub["status"] in LIVE_STATUSES
    if prorate_now:
        new_index = 0
        for target, was_price, was_qty, to_price, to_qty in changes:
            if target is None:
                if to_price is not None and not is_metered(to_price) and not reset_anchor:
                    planned.append((new_index, to_price, to_qty, 1))
                new_index += 1
                continue
            if was_price is to_price and was_qty == to_qty and not reset_anchor:
                continue
            if was_price is not None and not is_metered(was_price):
                planned.append((target, was_price, was_qty, -1))
            if to_price is not None and not is_metered(to_price) and not reset_anchor:
                planned.append((target, to_price, to_qty, 1))
        if reset_anchor:
            changed = {id(c[0]) for c in changes if c[0] is not None}
            for unchanged in items_of(state, sub):
                price = price_of(state, unchanged)
                if id(unchanged) not in changed and not is_metered(price):
                    planned.append((unchanged, price, unchanged.get("quantity") or 0, -1))

    # Apply the item changes.
    for changed_item, _was_price, _was_qty, to_price, to_qty in changes:
        if changed_item is None or to_price is None:
            continue
        changed_item["price"] = to_price["id"]
        changed_item["quantity"] = None if is_metered(to_price) else to_qty
    created_items: list[StoredObject] = []
    for price, quantity, metadata, where in new_specs:
        created = _new_item(state, sub, price, quantity, metadata, where)
        sub["_items"].append(created["id"])
        created_items.append(created)
    for gone in removed:
        sub["_items"].remove(gone["id"])
        gone["deleted"] = True
    prorations: list[StoredObject] = []
    for planned_target, planned_price, quantity, sign in planned:
        target_item = created_items[planned_target] if isinstance(planned_target, int) else planned_target
        entry = _proration_item(state, sub, target_item, planned_price, quantity, sign, proration_date)
        if entry is not None:
            prorations.append(entry)
    sub["_interval"] = interval

    # Cancellation scheduling.
    if "cancel_at_period_end" in params:
        if params["cancel_at_period_end"]:
            sub["cancel_at_period_end"] = True
            sub["cancel_at"] = sub["_period"][1]
            sub["canceled_at"] = now
            sub["cancellation_details"]["reason"] = "cancellation_requested"
        else:
            sub["cancel_at_period_end"] = False
            sub["cancel_at"] = None
            sub["canceled_at"] = None
            sub["cancellation_details"]["reason"] = None
    if "cancel_at" in params:
        value = params["cancel_at"]
        if value == EMPTY:
            sub["cancel_at"] = None
            sub["canceled_at"] = None
        elif isinstance(value, int):
            if value <= now:
                raise invalid("cancel_at must be in the future.", param="cancel_at")
            sub["cancel_at"] = value
            sub["canceled_at"] = now
        else:
            sub["cancel_at"] = sub["_period"][1]
            sub["canceled_at"] = now
        sub["cancel_at_period_end"] = sub["cancel_at"] == sub["_period"][1]

    # Trials.
    if isinstance(trial_end, int):
        if trial_end <= now:
            raise invalid("Invalid timestamp: must be an integer Unix timestamp in the future.", param="trial_end")
        if sub["status"] != "trialing" and behavior != "none":
            for item in items_of(state, sub):
                price = price_of(state, item)
                if not is_metered(price):
                    credit = _proration_item(state, sub, item, price, item.get("quantity") or 0, -1, proration_date)
                    if credit is not None:
                        prorations.append(credit)
        sub["trial_start"] = sub["trial_start"] if sub["status"] == "trialing" else now
        sub["trial_end"] = trial_end
        sub["status"] = "trialing" if sub["status"] in ("active", "trialing") else sub["status"]
        sub["_anchor"], sub["_cycle"] = trial_end, 0
        sub["billing_cycle_anchor"] = trial_end
        sub["_trial_will_end_sent"] = trial_end - now <= TRIAL_WILL_END_NOTICE
        set_period(state, sub, sub["_period"][0], trial_end)
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = trial_end
        return _invoice_prorations(state, sub, prorations, behavior, proration_date)

    if reset_anchor:
        if end_trial_now:
            sub["trial_end"] = now
        sub["_anchor"], sub["_cycle"] = now, 1
        sub["billing_cycle_anchor"] = now
        new_end = cycle_end(sub, 1)
        set_period(state, sub, now, new_end)
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = new_end
        if sub["status"] == "trialing":
            sub["status"] = "active"
        invoice = _subscription_invoice(
            state,
            sub,
            "subscription_update",
            (now, now),
            proration_date=proration_date if prorations else None,
        )
        add_pending_items(state, invoice, subscription_id=sub["id"], only_subscription=True)
        licensed_lines(state, sub, invoice, now, new_end)
        _apply_discounts(state, sub, invoice, now)
        _collect(state, sub, invoice)
        return invoice
    return _invoice_prorations(state, sub, prorations, behavior, proration_date)


def _invoice_prorations(
    state: EmulatorState,
    sub: StoredObject,
    prorations: list[StoredObject],
    behavior: str,
    proration_date: int,
) -> StoredObject | None:
    if behavior != "always_invoice" or not prorations:
        return None
    now = state.now()
    invoice = _subscription_invoice(state, sub, "subscription_update", (now, now), proration_date=proration_date)
    add_pending_items(state, invoice, subscription_id=sub["id"], only_subscription=True)
    _apply_discounts(state, sub, invoice, now)
    _collect(state, sub, invoice)
    return invoice


def update_subscription_in(state: EmulatorState, sub: StoredObject, params: dict[str, Any]) -> StoredObject | None:
    before = render(state, sub)
    state.last_payment_error = None
    invoice = apply_update(state, sub, params)
    error = state.last_payment_error
    if error is not None and params.get("payment_behavior") == "error_if_incomplete":
        raise error  # the dispatcher rolls the update back
    _emit_updated(state, sub, before)
    return invoice


@route("POST", "/v1/subscriptions/{subscription_exposed_id}", p.SubscriptionUpdateParams)
def update_subscription(ctx: Ctx) -> dict[str, Any]:
    sub = get(ctx.state, "subscription", ctx.path["subscription_exposed_id"])
    update_subscription_in(ctx.state, sub, ctx.params)
    return render(ctx.state, sub)


@route("GET", "/v1/subscriptions/{subscription_exposed_id}", p.SubscriptionRetrieveParams)
def retrieve_subscription(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "subscription", ctx.path["subscription_exposed_id"]))


@route("GET", "/v1/subscriptions", p.SubscriptionListParams)
def list_subscriptions(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    params = ctx.params
    objects = list(state.collection("subscription").values())
    status = params.get("status")
    if status is None:
        objects = [o for o in objects if o["status"] not in ("canceled", "incomplete_expired")]
    elif status == "ended":
        objects = [o for o in objects if o["status"] in ("canceled", "incomplete_expired")]
    elif status != "all":
        objects = [o for o in objects if o["status"] == status]
    for key in ("customer", "collection_method"):
        if params.get(key):
            objects = [o for o in objects if o.get(key) == params[key]]
    if params.get("price"):
        objects = [o for o in objects if any(item["price"] == params["price"] for item in items_of(state, o))]
    return paginate(state, objects, params, "/v1/subscriptions")


# --------------------------------------------------------------------------------------------
# Cancel, pause, resume


def cancel_subscription_now(
    state: EmulatorState,
    sub: StoredObject,
    *,
    reason: str = "cancellation_requested",
    invoice_now: bool = False,
    prorate_unused: bool = False,
    at: int | None = None,
) -> None:
    now = at if at is not None else state.now()
    start = sub["_period"][0]
    if prorate_unused and sub["status"] in LIVE_STATUSES and sub["status"] != "trialing":
        for item in items_of(state, sub):
            price = price_of(state, item)
            if not is_metered(price):
                _proration_item(state, sub, item, price, item.get("quantity") or 0, -1, now)
    has_metered = any(is_metered(price_of(state, item)) for item in items_of(state, sub))
    if invoice_now or (has_metered and sub["status"] in LIVE_STATUSES and at is not None):
        invoice = _subscription_invoice(state, sub, "subscription_cycle", (start, now))
        add_pending_items(state, invoice, subscription_id=sub["id"], only_subscription=True)
        if sub["status"] != "trialing":
            usage_lines(state, sub, invoice, start, now)
        if invoice["_lines"]:
            _apply_discounts(state, sub, invoice, now)
            _collect(state, sub, invoice)
        else:
            state.collection("invoice").pop(invoice["id"])
    sub["status"] = "canceled"
    sub["canceled_at"] = sub.get("canceled_at") or now
    sub["ended_at"] = now
    sub["cancellation_details"]["reason"] = sub["cancellation_details"].get("reason") or reason
    emit(state, "customer.subscription.deleted", sub)


@route("DELETE", "/v1/subscriptions/{subscription_exposed_id}", p.SubscriptionCancelParams)
def cancel_subscription(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    sub = get(state, "subscription", ctx.path["subscription_exposed_id"])
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid(f"No such subscription: '{sub['id']}'", param="id", code="resource_missing")
    details = ctx.params.get("cancellation_details") or {}
    for key in ("comment", "feedback"):
        if key in details:
            sub["cancellation_details"][key] = unset(details[key])
    sub["canceled_at"] = None
    cancel_subscription_now(
        state,
        sub,
        invoice_now=bool(ctx.params.get("invoice_now")),
        prorate_unused=bool(ctx.params.get("prorate")),
    )
    return render(state, sub)


def pause_now(state: EmulatorState, sub: StoredObject) -> None:
    before = render(state, sub)
    sub["status"] = "paused"
    sub["status_details"] = {"paused": {"subscription": {}, "transitioned_at": state.now(), "type": "subscription"}}
    emit(state, "customer.subscription.paused", sub)
    _emit_updated(state, sub, before)


@route("POST", "/v1/subscriptions/{subscription}/pause", p.SubscriptionPauseParams)
def pause_subscription(ctx: Ctx) -> dict[str, Any]:
    sub = get(ctx.state, "subscription", ctx.path["subscription"])
    if sub["status"] not in ("active", "trialing", "past_due", "unpaid"):
        raise state_error(f"A subscription with status {sub['status']} cannot be paused.")
    pause_now(ctx.state, sub)
    return render(ctx.state, sub)


@route("POST", "/v1/subscriptions/{subscription}/resume", p.SubscriptionResumeParams)
def resume_subscription(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    sub = get(state, "subscription", ctx.path["subscription"])
    if sub["status"] != "paused":
        raise state_error("Only paused subscriptions can be resumed.")
    before = render(state, sub)
    now = ctx.now
    sub["status"] = "active"
    sub["status_details"] = None
    anchor = ctx.params.get("billing_cycle_anchor") or "now"
    invoice = None
    if anchor == "now" or sub["_period"][1] <= now:
        sub["_anchor"], sub["_cycle"] = now, 1
        sub["billing_cycle_anchor"] = now
        set_period(state, sub, now, cycle_end(sub, 1))
        invoice = _subscription_invoice(state, sub, "subscription_update", (now, now))
        add_pending_items(state, invoice, subscription_id=sub["id"], only_subscription=True)
        licensed_lines(state, sub, invoice, now, sub["_period"][1])
        _apply_discounts(state, sub, invoice, now)
    emit(state, "customer.subscription.resumed", sub)
    if invoice is not None:
        error = _collect(state, sub, invoice)
        if error is not None and ctx.params.get("payment_behavior") == "error_if_incomplete":
            raise error
    _emit_updated(state, sub, before)
    return render(state, sub)


# --------------------------------------------------------------------------------------------
# Subscription items


@route("GET", "/v1/subscription_items", p.SubscriptionItemListParams)
def list_subscription_items(ctx: Ctx) -> dict[str, Any]:
    sub = get(ctx.state, "subscription", ctx.params["subscription"], param="subscription")
    return paginate(
        ctx.state,
        list(reversed(items_of(ctx.state, sub))),
        ctx.params,
        f"/v1/subscription_items?subscription={sub['id']}",
    )


@route("GET", "/v1/subscription_items/{item}", p.SubscriptionItemRetrieveParams)
def retrieve_subscription_item(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "subscription_item", ctx.path["item"]))


_ITEM_UPDATE_KEYS = ("payment_behavior", "proration_behavior", "proration_date", "expand")


@route("POST", "/v1/subscription_items", p.SubscriptionItemCreateParams)
def create_subscription_item(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    sub = get(state, "subscription", ctx.params["subscription"], param="subscription")
    spec = {k: v for k, v in ctx.params.items() if k in ("price", "price_data", "plan", "quantity", "metadata")}
    params = {k: ctx.params[k] for k in _ITEM_UPDATE_KEYS if k in ctx.params}
    before_ids = set(sub["_items"])
    update_subscription_in(state, sub, {**params, "items": [spec]})
    new_ids = [i for i in sub["_items"] if i not in before_ids]
    return render(state, state.collection("subscription_item")[new_ids[0]])


@route("POST", "/v1/subscription_items/{item}", p.SubscriptionItemUpdateParams)
def update_subscription_item(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    item = get(state, "subscription_item", ctx.path["item"])
    sub = state.collection("subscription")[item["subscription"]]
    spec = {
        "id": item["id"],
        **{k: v for k, v in ctx.params.items() if k in ("price", "price_data", "plan", "quantity", "metadata")},
    }
    params = {k: ctx.params[k] for k in _ITEM_UPDATE_KEYS if k in ctx.params}
    update_subscription_in(state, sub, {**params, "items": [spec]})
    return render(state, item)


@route("DELETE", "/v1/subscription_items/{item}", p.SubscriptionItemDeleteParams)
def delete_subscription_item(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    item = get(state, "subscription_item", ctx.path["item"])
    sub = state.collection("subscription")[item["subscription"]]
    params = {k: ctx.params[k] for k in _ITEM_UPDATE_KEYS if k in ctx.params}
    update_subscription_in(state, sub, {**params, "items": [{"id": item["id"], "deleted": True}]})
    return {"id": item["id"], "object": "subscription_item", "deleted": True}


# --------------------------------------------------------------------------------------------
# Time: renewals, trials, scheduled cancellations


def due_time(sub: StoredObject) -> int | None:
    status = sub["status"]
    times: list[int] = []
    if status == "incomplete":
        times.append(sub["created"] + INCOMPLETE_EXPIRY)
    if status in LIVE_STATUSES:
        times.append(sub["_period"][1])
        if sub.get("cancel_at"):
            times.append(sub["cancel_at"])
        pause = sub.get("pause_collection")
        if pause and pause.get("resumes_at"):
            times.append(pause["resumes_at"])
        if status == "trialing" and not sub["_trial_will_end_sent"] and sub.get("trial_end"):
            times.append(sub["trial_end"] - TRIAL_WILL_END_NOTICE)
    return min(times) if times else None


def process_due(state: EmulatorState, sub: StoredObject, at: int) -> None:
    """Apply the first transition of ``sub`` due at ``at`` (the clock is pinned to ``at``)."""
    status = sub["status"]
    if status == "incomplete":
        before = render(state, sub)
        sub["status"] = "incomplete_expired"
        sub["ended_at"] = at
        latest = state.collection("invoice").get(sub.get("latest_invoice") or "")
        if latest is not None and latest.get("status") == "open":
            void(state, latest)
        _emit_updated(state, sub, before)
        return
    pause = sub.get("pause_collection")
    if pause and pause.get("resumes_at") and pause["resumes_at"] <= at:
        before = render(state, sub)
        sub["pause_collection"] = None
        _emit_updated(state, sub, before)
        return
    if (
        status == "trialing"
        and not sub["_trial_will_end_sent"]
        and sub.get("trial_end")
        and sub["trial_end"] - TRIAL_WILL_END_NOTICE <= at
    ):
        sub["_trial_will_end_sent"] = True
        emit(state, "customer.subscription.trial_will_end", sub)
        return
    end = sub["_period"][1]
    if sub.get("cancel_at") and sub["cancel_at"] <= end and sub["cancel_at"] <= at:
        cancel_subscription_now(state, sub, at=sub["cancel_at"])
        return
    if end <= at:
        renew(state, sub)


def renew(state: EmulatorState, sub: StoredObject) -> StoredObject | None:
    """Move ``sub`` into its next period and bill it; returns the new invoice."""
    start, end = sub["_period"]
    before = render(state, sub)
    was_trialing = sub["status"] == "trialing"
    if was_trialing and _default_pm(state, sub) is None and (sub["collection_method"] == "charge_automatically"):
        behavior = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
        if behavior == "cancel":
            cancel_subscription_now(state, sub, at=end)
            return None
        if behavior == "pause":
            pause_now(state, sub)
            return None
    sub["_cycle"] += 1
    new_end = cycle_end(sub, sub["_cycle"])
    set_period(state, sub, end, new_end)
    if was_trialing:
        sub["status"] = "active"
    if sub.get("cancel_at_period_end"):
        sub["cancel_at"] = new_end
    invoice = _subscription_invoice(state, sub, "subscription_cycle", (start, end))
    add_pending_items(state, invoice, subscription_id=sub["id"], only_subscription=True)
    if not was_trialing:
        usage_lines(state, sub, invoice, start, end)
    licensed_lines(state, sub, invoice, end, new_end)
    _apply_discounts(state, sub, invoice, end)
    _emit_updated(state, sub, before)
    _collect(state, sub, invoice)
    return invoice


def invoice_due_time(invoice: StoredObject) -> int | None:
    """When Stripe would next act on an invoice by itself: auto-finalize or retry a payment."""
    if invoice.get("deleted") or invoice["id"].startswith("upcoming_"):
        return None
    if invoice["status"] == "draft" and invoice.get("auto_advance"):
        return invoice.get("automatically_finalizes_at")
    if (
        invoice["status"] == "open"
        and invoice.get("auto_advance")
        and invoice["collection_method"] == "charge_automatically"
    ):
        return invoice.get("next_payment_attempt")
    return None


def process_invoice_due(state: EmulatorState, invoice: StoredObject) -> None:
    sub = invoice_subscription(state, invoice)
    if invoice["status"] == "draft":
        finalize(state, invoice)
        if invoice["status"] == "open" and invoice["collection_method"] == "charge_automatically":
            pay(state, invoice, automatic=True)
        return
    if sub is not None and sub.get("pause_collection"):
        invoice["next_payment_attempt"] = None
        return
    error = pay(state, invoice, automatic=True)
    exhausted = error is not None and invoice["next_payment_attempt"] is None
    if exhausted and sub is not None and sub["status"] == "past_due":
        # Every retry failed: like the "mark the subscription as unpaid" billing setting.
        before = render(state, sub)
        sub["status"] = "unpaid"
        _emit_updated(state, sub, before)


def run_due(state: EmulatorState, until: int) -> int:
    """Apply everything due at or before ``until`` in time order: renewals, trial ends,
    scheduled cancellations, auto-finalization and automatic payment retries."""
    processed = 0
    for _ in range(100_000):
        best: tuple[int, str, StoredObject] | None = None
        for sub in state.collection("subscription").values():
            when = due_time(sub)
            if when is not None and when <= until and (best is None or when < best[0]):
                best = (when, "subscription", sub)
        for invoice in state.collection("invoice").values():
            when = invoice_due_time(invoice)
            if when is not None and when <= until and (best is None or when < best[0]):
                best = (when, "invoice", invoice)
        if best is None:
            break
        when, kind, obj = best
        with state.clock.pinned(max(when, obj["created"])):
            if kind == "subscription":
                process_due(state, obj, when)
            else:
                process_invoice_due(state, obj)
        processed += 1
    return processed


# --------------------------------------------------------------------------------------------
# Preview


def _preview_params(details: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "items",
        "proration_behavior",
        "proration_date",
        "cancel_at_period_end",
        "cancel_at",
        "trial_end",
        "billing_cycle_anchor",
        "metadata",
    )
    params = {k: details[k] for k in keys if k in details}
    anchor = details.get("billing_cycle_anchor")
    if isinstance(anchor, dict):
        params["billing_cycle_anchor"] = {"type": anchor.get("type")}
    return params


@route("POST", "/v1/invoices/create_preview", p.InvoiceCreatePreviewParams)
def create_preview(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    params = ctx.params
    fork = state.fork()
    details = params.get("subscription_details") or {}
    customer_id = params.get("customer")
    invoice: StoredObject | None = None
    if params.get("subscription"):
        sub = get(fork, "subscription", params["subscription"], param="subscription")
        if customer_id and sub["customer"] != customer_id:
            raise invalid("The subscription does not belong to this customer.", param="subscription")
        customer_id = sub["customer"]
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid(
                "No upcoming invoices for a canceled subscription.", code="invoice_upcoming_none", param="subscription"
            )
        update = _preview_params(details)
        if "discounts" in params:
            update["discounts"] = params["discounts"]
        if update:
            invoice = apply_update(fork, sub, update)
        _add_preview_items(fork, params, customer_id)
        if invoice is None:
            if details.get("cancel_now") or (sub.get("cancel_at") and sub["cancel_at"] <= sub["_period"][1]):
                raise invalid(
                    "No upcoming invoices: the subscription ends at period end.",
                    code="invoice_upcoming_none",
                    param="subscription",
                )
            invoice = renew(fork, sub)
    elif details.get("items"):
        if not customer_id:
            raise invalid("Missing required param: customer.", param="customer", code="parameter_missing")
        create = {"customer": customer_id, **_preview_params(details), "payment_behavior": "default_incomplete"}
        if "discounts" in params:
            create["discounts"] = params["discounts"]
        if isinstance(create.get("billing_cycle_anchor"), dict):
            create.pop("billing_cycle_anchor")
        if details.get("start_date"):
            create["backdate_start_date"] = details["start_date"]
        _add_preview_items(fork, params, customer_id)
        sub = create_subscription_in(fork, create)
        invoice = fork.collection("invoice")[sub["latest_invoice"]]
    else:
        if not customer_id:
            raise invalid("Missing required param: customer.", param="customer", code="parameter_missing")
        customer = get(fork, "customer", customer_id, param="customer")
        _add_preview_items(fork, params, customer_id)
        invoice = new_invoice(fork, customer, currency=customer.get("currency") or "usd", billing_reason="manual")
        add_pending_items(fork, invoice, subscription_id=None, only_subscription=False)
        if not invoice["_lines"]:
            raise invalid("No upcoming invoices for customer.", code="invoice_upcoming_none", param="customer")
    assert invoice is not None
    compute_totals(fork, invoice)
    customer = fork.collection("customer").get(invoice["customer"]) or {}
    balance = customer.get("balance") or 0
    total = invoice["total"]
    applied = (balance if balance > 0 else max(balance, -total)) if total >= 0 else total
    invoice["starting_balance"] = balance
    invoice["ending_balance"] = balance - applied if total >= 0 else balance + total
    invoice["amount_due"] = total + applied if total >= 0 else 0
    invoice["amount_remaining"] = invoice["amount_due"]
    rendered = render(fork, invoice)
    preview_id = "upcoming_" + invoice["id"]
    rendered["id"] = preview_id
    for line in rendered["lines"]["data"]:
        line["invoice"] = preview_id
    rendered["lines"]["url"] = f"/v1/invoices/{preview_id}/lines"
    rendered["status"] = "draft"
    rendered["number"] = None
    rendered["hosted_invoice_url"] = None
    rendered["invoice_pdf"] = None
    rendered["payments"] = {"object": "list", "data": [], "has_more": False, "url": ""}
    ctx.extra["state_for_expand"] = fork
    return rendered


def _add_preview_items(fork: EmulatorState, params: dict[str, Any], customer_id: str) -> None:
    items = params.get("invoice_items") or []
    if not items:
        return
    customer = get(fork, "customer", customer_id, param="customer")
    now = fork.now()
    for index, spec in enumerate(items):
        where = f"invoice_items[{index}]"
        quantity = spec.get("quantity", 1)
        price = None
        if spec.get("price"):
            price = get(fork, "price", spec["price"], param=f"{where}[price]")
            amount, currency = price["unit_amount"] * quantity, price["currency"]
        elif isinstance(spec.get("price_data"), dict):
            price = inline_price(fork, spec["price_data"], f"{where}[price_data]", recurring=False)
            amount, currency = price["unit_amount"] * quantity, price["currency"]
        else:
            amount = spec.get("amount", (spec.get("unit_amount") or 0) * quantity)
            currency = (spec.get("currency") or customer.get("currency") or "usd").lower()
        period = spec.get("period") or {"start": now, "end": now}
        new_invoice_item(
            fork,
            customer,
            amount=amount,
            currency=currency,
            description=spec.get("description"),
            period=(period["start"], period["end"]),
            quantity=quantity,
            price=price,
            discountable=spec.get("discountable", True),
        )
