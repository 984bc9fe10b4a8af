"""Products, prices, coupons, promotion codes, and the Discount objects they produce."""

from __future__ import annotations

import secrets
import string
from typing import Any

from stripe import params as p

from ..core import (
    Ctx,
    add_interval,
    check_currency,
    diff,
    emit,
    find,
    get,
    merge_metadata,
    new_id,
    non_negative,
    paginate,
    positive,
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

# --------------------------------------------------------------------------------------------
# Products


def _new_product(state: EmulatorState, params: dict[str, Any]) -> StoredObject:
    product_id = params.get("id") or new_id("prod", 14)
    if find(state, "product", product_id):
        raise invalid(f"Product already exists: {product_id}", param="id", code="resource_already_exists")
    product: StoredObject = {
        "id": product_id,
        "object": "product",
        "active": params.get("active", True),
        "created": state.now(),
        "default_price": None,
        "description": unset(params.get("description")),
        "images": params.get("images") or [],
        "livemode": False,
        "marketing_features": params.get("marketing_features") or [],
        "metadata": merge_metadata({}, params.get("metadata", {})),
        "name": params["name"],
        "package_dimensions": params.get("package_dimensions"),
        "shippable": params.get("shippable"),
        "statement_descriptor": params.get("statement_descriptor"),
        "tax_code": params.get("tax_code"),
        "type": params.get("type", "service"),
        "unit_label": params.get("unit_label"),
        "updated": state.now(),
        "url": unset(params.get("url")),
    }
    return put(state, product)


@route("POST", "/v1/products", p.ProductCreateParams)
def create_product(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    if not ctx.params["name"]:
        raise invalid("Missing required param: name.", param="name", code="parameter_missing")
    product = _new_product(state, ctx.params)
    emit(state, "product.created", product)
    price_data = ctx.params.get("default_price_data")
    if isinstance(price_data, dict):
        price = _new_price(state, {**price_data, "product": product["id"]}, "default_price_data")
        product["default_price"] = price["id"]
        emit(state, "price.created", price)
    return render(state, product)


@route("GET", "/v1/products/{id}", p.ProductRetrieveParams)
def retrieve_product(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "product", ctx.path["id"], allow_deleted=True))


@route("POST", "/v1/products/{id}", p.ProductUpdateParams)
def update_product(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    product = get(state, "product", ctx.path["id"])
    before = render(state, product)
    for key in (
        "active",
        "description",
        "name",
        "shippable",
        "statement_descriptor",
        "unit_label",
        "url",
        "tax_code",
        "images",
        "marketing_features",
    ):
        if key in ctx.params:
            product[key] = unset(ctx.params[key])
    for key in ("images", "marketing_features"):
        if product.get(key) is None:
            product[key] = []
    if "default_price" in ctx.params:
        price_id = unset(ctx.params["default_price"])
        if price_id is not None:
            price = get(state, "price", price_id, param="default_price")
            if price["product"] != product["id"]:
                raise invalid("The price must belong to this product.", param="default_price")
        product["default_price"] = price_id
    if "metadata" in ctx.params:
        product["metadata"] = merge_metadata(product.get("metadata"), ctx.params["metadata"])
    product["updated"] = ctx.now
    after = render(state, product)
    emit(state, "product.updated", product, diff(before, after))
    return after


@route("DELETE", "/v1/products/{id}", p.ProductDeleteParams)
def delete_product(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    product = get(state, "product", ctx.path["id"])
    if any(pr["product"] == product["id"] for pr in state.collection("price").values()):
        raise state_error("This product cannot be deleted because it has one or more prices.")
    snapshot = render(state, product)
    stub = {"id": product["id"], "object": "product", "deleted": True}
    state.collection("product")[product["id"]] = stub
    emit(state, "product.deleted", snapshot)
    return dict(stub)


@route("GET", "/v1/products", p.ProductListParams)
def list_products(ctx: Ctx) -> dict[str, Any]:
    objects = [o for o in ctx.state.collection("product").values() if not o.get("deleted")]
    if "active" in ctx.params:
        objects = [o for o in objects if o["active"] == ctx.params["active"]]
    if ctx.params.get("ids"):
        objects = [o for o in objects if o["id"] in ctx.params["ids"]]
    return paginate(ctx.state, objects, ctx.params, "/v1/products")


# --------------------------------------------------------------------------------------------
# Prices


def _new_price(state: EmulatorState, params: dict[str, Any], param_prefix: str = "") -> StoredObject:
    def name(key: str) -> str:
        return f"{param_prefix}[{key}]" if param_prefix else key

    currency = check_currency(require(params, "currency"), name("currency"))
    if params.get("billing_scheme") == "tiered" or params.get("tiers"):
        raise invalid("Tiered prices are not supported by the emulator.", param=name("tiers"))
    if params.get("custom_unit_amount"):
        raise invalid("custom_unit_amount is not supported by the emulator.", param=name("custom_unit_amount"))
    product_id = params.get("product")
    if isinstance(params.get("product_data"), dict):
        product = _new_product(state, params["product_data"])
        emit(state, "product.created", product)
        product_id = product["id"]
    elif product_id is None:
        raise invalid("Missing required param: product.", param=name("product"), code="parameter_missing")
    else:
        get(state, "product", product_id, param=name("product"))
    unit_amount = params.get("unit_amount")
    if unit_amount is None and params.get("unit_amount_decimal") is not None:
        unit_amount = int(params["unit_amount_decimal"])
    if unit_amount is None:
        raise invalid("Missing required param: unit_amount.", param=name("unit_amount"), code="parameter_missing")
    non_negative(unit_amount, name("unit_amount"))
    recurring = None
    if isinstance(params.get("recurring"), dict):
        rec = params["recurring"]
        interval_count = rec.get("interval_count", 1)
        positive(interval_count, name("recurring") + "[interval_count]")
        usage_type = rec.get("usage_type", "licensed")
        meter = rec.get("meter")
        if usage_type == "metered":
            if not meter:
                raise invalid(
                    "Metered prices must be backed by a billing meter: pass recurring[meter].",
                    param=name("recurring") + "[meter]",
                    code="parameter_missing",
                )
            get(state, "billing.meter", meter, param=name("recurring") + "[meter]")
        recurring = {
            "interval": rec["interval"],
            "interval_count": interval_count,
            "meter": meter,
            "trial_period_days": rec.get("trial_period_days"),
            "usage_type": usage_type,
        }
    lookup_key = params.get("lookup_key")
    if lookup_key:
        for other in state.collection("price").values():
            if other.get("lookup_key") == lookup_key:
                if not params.get("transfer_lookup_key"):
                    raise invalid(
                        f"A price (`{other['id']}`) already uses that lookup key.",
                        param=name("lookup_key"),
                    )
                other["lookup_key"] = None
    price: StoredObject = {
        "id": new_id("price"),
        "object": "price",
        "active": params.get("active", True),
        "billing_scheme": "per_unit",
        "created": state.now(),
        "currency": currency,
        "currency_options": None,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": merge_metadata({}, params.get("metadata", {})),
        "nickname": params.get("nickname"),
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": params.get("tax_behavior", "unspecified"),
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }
    return put(state, price)


def inline_price(state: EmulatorState, price_data: dict[str, Any], param: str, *, recurring: bool) -> StoredObject:
    """A price created from ``price_data`` (inactive, as Stripe does for inline prices)."""
    get(state, "product", price_data["product"], param=f"{param}[product]")
    data = dict(price_data)
    if not recurring:
        data.pop("recurring", None)
    price = _new_price(state, data, param)
    price["active"] = False
    return price


@route("POST", "/v1/prices", p.PriceCreateParams)
def create_price(ctx: Ctx) -> dict[str, Any]:
    price = _new_price(ctx.state, ctx.params)
    emit(ctx.state, "price.created", price)
    return render(ctx.state, price)


@route("GET", "/v1/prices/{price}", p.PriceRetrieveParams)
def retrieve_price(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "price", ctx.path["price"]))


@route("POST", "/v1/prices/{price}", p.PriceUpdateParams)
def update_price(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    price = get(state, "price", ctx.path["price"])
    before = render(state, price)
    for key in ("active", "nickname", "tax_behavior"):
        if key in ctx.params:
            price[key] = unset(ctx.params[key])
    if "lookup_key" in ctx.params:
        price["lookup_key"] = unset(ctx.params["lookup_key"])
    if "metadata" in ctx.params:
        price["metadata"] = merge_metadata(price.get("metadata"), ctx.params["metadata"])
    after = render(state, price)
    emit(state, "price.updated", price, diff(before, after))
    return after


@route("GET", "/v1/prices", p.PriceListParams)
def list_prices(ctx: Ctx) -> dict[str, Any]:
    params = ctx.params
    objects = list(ctx.state.collection("price").values())
    if "active" in params:
        objects = [o for o in objects if o["active"] == params["active"]]
    for key in ("currency", "product", "type"):
        if params.get(key):
            objects = [o for o in objects if o.get(key) == params[key]]
    if params.get("lookup_keys"):
        objects = [o for o in objects if o.get("lookup_key") in params["lookup_keys"]]
    recurring = params.get("recurring")
    if isinstance(recurring, dict):
        for key in ("interval", "usage_type", "meter"):
            if recurring.get(key):
                objects = [o for o in objects if o.get("recurring") and o["recurring"].get(key) == recurring[key]]
    return paginate(ctx.state, objects, params, "/v1/prices")


# --------------------------------------------------------------------------------------------
# Coupons


def coupon_valid(state: EmulatorState, coupon: StoredObject) -> bool:
    if coupon.get("deleted"):
        return False
    if coupon.get("redeem_by") and state.now() > coupon["redeem_by"]:
        return False
    max_redemptions = coupon.get("max_redemptions")
    return not (max_redemptions and coupon["times_redeemed"] >= max_redemptions)


@renderer("coupon")
def _render_coupon(state: EmulatorState, obj: StoredObject, out: dict[str, Any]) -> None:
    out["valid"] = coupon_valid(state, obj)


@route("POST", "/v1/coupons", p.CouponCreateParams)
def create_coupon(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    params = ctx.params
    percent_off = params.get("percent_off")
    amount_off = params.get("amount_off")
    if (percent_off is None) == (amount_off is None):
        raise invalid(
            "You must pass exactly one of percent_off or amount_off.",
            param="percent_off" if percent_off is None else "amount_off",
        )
    currency = None
    if amount_off is not None:
        positive(amount_off, "amount_off")
        currency = check_currency(require(params, "currency"))
    elif percent_off is None or not 0 < percent_off <= 100:
        raise invalid("percent_off must be greater than 0 and at most 100.", param="percent_off")
    duration = params.get("duration", "once")
    duration_in_months = params.get("duration_in_months")
    if duration == "repeating":
        positive(require(params, "duration_in_months"), "duration_in_months")
    elif duration_in_months is not None:
        raise invalid("duration_in_months is only allowed when duration is repeating.", param="duration_in_months")
    coupon_id = params.get("id") or "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))
    existing = find(state, "coupon", coupon_id)
    if existing and not existing.get("deleted"):
        raise invalid("Coupon already exists.", param="id", code="resource_already_exists")
    if params.get("max_redemptions") is not None:
        positive(params["max_redemptions"], "max_redemptions")
    coupon: StoredObject = {
        "id": coupon_id,
        "object": "coupon",
        "amount_off": amount_off,
        "applies_to": params.get("applies_to"),
        "created": ctx.now,
        "currency": currency,
        "currency_options": None,
        "duration": duration,
        "duration_in_months": duration_in_months,
        "livemode": False,
        "max_redemptions": params.get("max_redemptions"),
        "metadata": merge_metadata({}, params.get("metadata", {})),
        "name": params.get("name"),
        "percent_off": float(percent_off) if percent_off is not None else None,
        "redeem_by": params.get("redeem_by"),
        "times_redeemed": 0,
        "valid": True,
    }
    put(state, coupon)
    emit(state, "coupon.created", coupon)
    return render(state, coupon)


@route("GET", "/v1/coupons/{coupon}", p.CouponRetrieveParams)
def retrieve_coupon(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "coupon", ctx.path["coupon"]))


@route("POST", "/v1/coupons/{coupon}", p.CouponUpdateParams)
def update_coupon(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    coupon = get(state, "coupon", ctx.path["coupon"])
    before = render(state, coupon)
    if "name" in ctx.params:
        coupon["name"] = unset(ctx.params["name"])
    if "metadata" in ctx.params:
        coupon["metadata"] = merge_metadata(coupon.get("metadata"), ctx.params["metadata"])
    after = render(state, coupon)
    emit(state, "coupon.updated", coupon, diff(before, after))
    return after


@route("DELETE", "/v1/coupons/{coupon}", p.CouponDeleteParams)
def delete_coupon(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    coupon = get(state, "coupon", ctx.path["coupon"])
    snapshot = render(state, coupon)
    coupon["deleted"] = True
    emit(state, "coupon.deleted", snapshot)
    return {"id": coupon["id"], "object": "coupon", "deleted": True}


@route("GET", "/v1/coupons", p.CouponListParams)
def list_coupons(ctx: Ctx) -> dict[str, Any]:
    objects = [o for o in ctx.state.collection("coupon").values() if not o.get("deleted")]
    return paginate(ctx.state, objects, ctx.params, "/v1/coupons")


# --------------------------------------------------------------------------------------------
# Promotion codes


@route("POST", "/v1/promotion_codes", p.PromotionCodeCreateParams)
def create_promotion_code(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    params = ctx.params
    promotion = params["promotion"]
    coupon_id = promotion.get("coupon")
    if not coupon_id:
        raise invalid("Missing required param: promotion[coupon].", param="promotion[coupon]", code="parameter_missing")
    get(state, "coupon", coupon_id, param="promotion[coupon]")
    code = params.get("code") or "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8))
    for other in state.collection("promotion_code").values():
        if other["active"] and other["code"].lower() == code.lower():
            raise invalid(
                "An active promotion code with this code already exists.", param="code", code="resource_already_exists"
            )
    if params.get("customer"):
        get(state, "customer", params["customer"], param="customer")
    restrictions = params.get("restrictions") or {}
    promo: StoredObject = {
        "id": new_id("promo"),
        "object": "promotion_code",
        "active": params.get("active", True),
        "code": code,
        "created": ctx.now,
        "customer": params.get("customer"),
        "customer_account": None,
        "expires_at": params.get("expires_at"),
        "livemode": False,
        "max_redemptions": params.get("max_redemptions"),
        "metadata": merge_metadata({}, params.get("metadata", {})),
        "promotion": {"coupon": coupon_id, "type": "coupon"},
        "restrictions": {
            "currency_options": restrictions.get("currency_options") or {},
            "first_time_transaction": restrictions.get("first_time_transaction", False),
            "minimum_amount": restrictions.get("minimum_amount"),
            "minimum_amount_currency": restrictions.get("minimum_amount_currency"),
        },
        "times_redeemed": 0,
    }
    put(state, promo)
    emit(state, "promotion_code.created", promo)
    return render(state, promo)


@route("GET", "/v1/promotion_codes/{promotion_code}", p.PromotionCodeRetrieveParams)
def retrieve_promotion_code(ctx: Ctx) -> dict[str, Any]:
    return render(ctx.state, get(ctx.state, "promotion_code", ctx.path["promotion_code"]))


@route("POST", "/v1/promotion_codes/{promotion_code}", p.PromotionCodeUpdateParams)
def update_promotion_code(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    promo = get(state, "promotion_code", ctx.path["promotion_code"])
    before = render(state, promo)
    if "active" in ctx.params:
        promo["active"] = ctx.params["active"]
    if "metadata" in ctx.params:
        promo["metadata"] = merge_metadata(promo.get("metadata"), ctx.params["metadata"])
    restrictions = ctx.params.get("restrictions")
    if isinstance(restrictions, dict) and "currency_options" in restrictions:
        promo["restrictions"]["currency_options"] = restrictions["currency_options"] or {}
    after = render(state, promo)
    emit(state, "promotion_code.updated", promo, diff(before, after))
    return after


@route("GET", "/v1/promotion_codes", p.PromotionCodeListParams)
def list_promotion_codes(ctx: Ctx) -> dict[str, Any]:
    params = ctx.params
    objects = list(ctx.state.collection("promotion_code").values())
    if "active" in params:
        objects = [o for o in objects if o["active"] == params["active"]]
    if params.get("code"):
        objects = [o for o in objects if o["code"].lower() == params["code"].lower()]
    if params.get("coupon"):
        objects = [o for o in objects if o["promotion"]["coupon"] == params["coupon"]]
    if params.get("customer"):
        objects = [o for o in objects if o.get("customer") == params["customer"]]
    return paginate(ctx.state, objects, params, "/v1/promotion_codes")


# --------------------------------------------------------------------------------------------
# Discounts


def _coupon_expired(coupon: StoredObject, param: str) -> StripeError:
    return invalid(f"Coupon {coupon['id']} is no longer valid.", param=param, code="coupon_expired")


def create_discounts(
    state: EmulatorState,
    specs: Any,
    *,
    customer: str,
    param: str,
    subscription: str | None = None,
    invoice: str | None = None,
    currency: str | None = None,
) -> list[str]:
    """Discount objects for ``discounts[]`` params (``coupon`` / ``promotion_code`` / ``discount``)."""
    if specs in (None, EMPTY):
        return []
    ids: list[str] = []
    now = state.now()
    for index, spec in enumerate(specs):
        where = f"{param}[{index}]"
        if spec.get("discount"):
            existing = get(state, "discount", spec["discount"], param=f"{where}[discount]")
            ids.append(existing["id"])
            continue
        promo = None
        if spec.get("promotion_code"):
            promo = get(state, "promotion_code", spec["promotion_code"], param=f"{where}[promotion_code]")
            expired = promo.get("expires_at") and now > promo["expires_at"]
            exhausted = promo.get("max_redemptions") and (promo["times_redeemed"] >= promo["max_redemptions"])
            if not promo["active"] or expired or exhausted:
                raise invalid(
                    f"This promotion code cannot be redeemed: {promo['code']}", param=f"{where}[promotion_code]"
                )
            if promo.get("customer") and promo["customer"] != customer:
                raise invalid(
                    "This promotion code cannot be redeemed by this customer.", param=f"{where}[promotion_code]"
                )
            coupon = get(state, "coupon", promo["promotion"]["coupon"], param=f"{where}[promotion_code]")
        elif spec.get("coupon"):
            coupon = get(state, "coupon", spec["coupon"], param=f"{where}[coupon]")
        else:
            raise invalid(
                "Each discount needs a coupon, promotion_code or discount.", param=where, code="parameter_missing"
            )
        if not coupon_valid(state, coupon):
            raise _coupon_expired(coupon, f"{where}[coupon]")
        if coupon.get("amount_off") and currency and coupon.get("currency") != currency:
            raise invalid(
                f"Coupon {coupon['id']} is in {coupon['currency']} but the currency is {currency}.",
                param=f"{where}[coupon]",
            )
        end = None
        if coupon["duration"] == "repeating":
            end = add_interval(now, "month", coupon["duration_in_months"])
        discount: StoredObject = {
            "id": new_id("di"),
            "object": "discount",
            "checkout_session": None,
            "customer": customer,
            "customer_account": None,
            "end": end,
            "invoice": invoice,
            "invoice_item": None,
            "promotion_code": promo["id"] if promo else None,
            "source": {"coupon": coupon["id"], "type": "coupon"},
            "start": now,
            "subscription": subscription,
            "subscription_item": None,
            "_once": coupon["duration"] == "once",
        }
        put(state, discount)
        coupon["times_redeemed"] += 1
        if promo is not None:
            promo["times_redeemed"] += 1
        ids.append(discount["id"])
    return ids


def discount_active(discount: StoredObject, at: int) -> bool:
    if discount.get("_used_up"):
        return False
    return discount["start"] <= at and (discount.get("end") is None or at < discount["end"])


def discount_coupon(state: EmulatorState, discount: StoredObject) -> StoredObject:
    return state.collection("coupon")[discount["source"]["coupon"]]
