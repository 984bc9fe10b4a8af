"""Customer writes: create and update (local fields and the Stripe customer), suspend and
reactivate (local status only: no Stripe call). Each writes its audit entry in the caller's
transaction; Stripe is called before the local commit (see api/idempotency)."""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor, record_audit
from api.customer.models import Customer, CustomerStatus, CustomerTier
from api.errors import Invalid, NotFound
from api.idempotency.service import MutationKey, previous_result, remember
from api.stripe.gateway import StripeGateway
from api.stripe.mirror import mirror_customer
from api.stripe.params import CustomerCreateParams, CustomerCreateParamsAddress, CustomerUpdateParams

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EXPAND_PAYMENT_METHOD = ["invoice_settings.default_payment_method"]
# Stripe's parameter → the mutation's input field, so a refusal names what the client sent
CUSTOMER_FIELDS = {
    "payment_method": "paymentMethod",
    "invoice_settings[default_payment_method]": "paymentMethod",
    "name": "name",
    "email": "email",
    "phone": "phone",
    "address[line1]": "address.line1",
    "address[line2]": "address.line2",
    "address[city]": "address.city",
    "address[state]": "address.state",
    "address[postal_code]": "address.postalCode",
    "address[country]": "address.country",
    "*": "paymentMethod",  # a card error without a param is about the card
}


@dataclass(frozen=True, slots=True)
class AddressData:
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerData:
    """createCustomer's input; in updateCustomer every None means "leave as it is"."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: AddressData | None = None
    tax_id: str | None = None
    tier: CustomerTier | None = None
    industry: str | None = None
    internal_team: bool | None = None
    currency: str | None = None
    external_id: str | None = None
    payment_method: str | None = None


def customer_snapshot(c: Customer) -> dict[str, Any]:
    return {
        "name": c.name,
        "email": c.email,
        "phone": c.phone,
        "address": {
            "line1": c.address_line1,
            "line2": c.address_line2,
            "city": c.address_city,
            "state": c.address_state,
            "postal_code": c.address_postal_code,
            "country": c.address_country,
        },
        "tax_id": c.tax_id,
        "tier": c.tier.value,
        "industry": c.industry,
        "status": c.status.value,
        "suspended_reason": c.suspended_reason,
        "internal_team": c.internal_team,
        "currency": c.currency,
        "external_id": c.external_id,
        "stripe_customer_id": c.stripe_customer_id,
        "payment_method": f"{c.payment_method_brand} {c.payment_method_last4}" if c.payment_method_last4 else None,
    }


def _payload(data: CustomerData, **extra: Any) -> dict[str, Any]:
    return {**dataclasses.asdict(data), **extra}


def _clean(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


async def _validate(session: AsyncSession, data: CustomerData, customer_id: uuid.UUID | None) -> None:
    if data.name is not None and not data.name.strip():
        raise Invalid("`name` must not be empty", field="name")
    if data.name is not None and len(data.name.strip()) > 200:
        raise Invalid("`name` is longer than 200 characters", field="name")
    if data.email is not None and data.email.strip() and not _EMAIL.match(data.email.strip()):
        raise Invalid("`email` is not an email address", field="email")
    if data.currency is not None and not re.fullmatch(r"[A-Za-z]{3}", data.currency):
        raise Invalid("`currency` must be an ISO 4217 code such as `usd`", field="currency")
    country = data.address.country.strip() if data.address and data.address.country else None
    if country and not re.fullmatch(r"[A-Za-z]{2}", country):
        raise Invalid("`address.country` must be an ISO 3166-1 alpha-2 code such as `FR`", field="address.country")
    if data.payment_method is not None and not data.payment_method.strip():
        raise Invalid("`paymentMethod` must not be empty", field="paymentMethod")
    if data.external_id:
        taken = (
            await session.execute(select(Customer.id).where(Customer.external_id == data.external_id.strip()))
        ).scalar_one_or_none()
        if taken is not None and taken != customer_id:
            raise Invalid(f"another customer already has externalId {data.external_id!r}", field="externalId")


def _apply_local(customer: Customer, data: CustomerData) -> None:
    if data.name is not None:
        customer.name = data.name.strip()
    if data.email is not None:
        customer.email = _clean(data.email)
    if data.phone is not None:
        customer.phone = _clean(data.phone)
    if data.address is not None:  # the parts given change (as Stripe merges them); "" clears one locally
        a = data.address
        if a.line1 is not None:
            customer.address_line1 = _clean(a.line1)
        if a.line2 is not None:
            customer.address_line2 = _clean(a.line2)
        if a.city is not None:
            customer.address_city = _clean(a.city)
        if a.state is not None:
            customer.address_state = _clean(a.state)
        if a.postal_code is not None:
            customer.address_postal_code = _clean(a.postal_code)
        if a.country is not None:
            customer.address_country = a.country.strip().upper() or None
    if data.tax_id is not None:
        customer.tax_id = _clean(data.tax_id)
    if data.tier is not None:
        customer.tier = data.tier
    if data.industry is not None:
        customer.industry = _clean(data.industry)
    if data.internal_team is not None:
        customer.internal_team = data.internal_team
    if data.currency is not None:
        customer.currency = data.currency.lower()
    if data.external_id is not None:
        customer.external_id = _clean(data.external_id)


def _stripe_address(customer: Customer) -> CustomerCreateParamsAddress | None:
    address: CustomerCreateParamsAddress = {}
    if customer.address_line1:
        address["line1"] = customer.address_line1
    if customer.address_line2:
        address["line2"] = customer.address_line2
    if customer.address_city:
        address["city"] = customer.address_city
    if customer.address_state:
        address["state"] = customer.address_state
    if customer.address_postal_code:
        address["postal_code"] = customer.address_postal_code
    if customer.address_country:
        address["country"] = customer.address_country
    return address or None


def stripe_customer_params(customer: Customer) -> CustomerCreateParams:
    """What Stripe holds about a customer: contact details and the link back to Ledgerline.
    Tier, industry, tax id, notes, suspension stay local (DESIGN habit 5)."""
    params: CustomerCreateParams = {
        "name": customer.name,
        "metadata": {"ledgerline_customer_id": str(customer.id)},
        "expand": EXPAND_PAYMENT_METHOD,
    }
    if customer.email:
        params["email"] = customer.email
    if customer.phone:
        params["phone"] = customer.phone
    if (address := _stripe_address(customer)) is not None:
        params["address"] = address
    return params


def stripe_update_params(customer: Customer, data: CustomerData) -> CustomerUpdateParams:
    """Only what the mutation changed (Stripe refuses "" for email and phone: a cleared value stays there)."""
    params: CustomerUpdateParams = {"expand": EXPAND_PAYMENT_METHOD}
    if data.name is not None:
        params["name"] = customer.name
    if data.email is not None and customer.email:
        params["email"] = customer.email
    if data.phone is not None and customer.phone:
        params["phone"] = customer.phone
    if data.address is not None:
        params["address"] = _stripe_address(customer) or ""
    return params


async def ensure_stripe_customer(
    session: AsyncSession, gateway: StripeGateway, customer: Customer, idempotency_key: str
) -> str:
    """The customer's Stripe id, creating the Stripe customer first if it has none yet."""
    if customer.stripe_customer_id is None:
        remote = await gateway.create_customer(
            stripe_customer_params(customer), idempotency_key=idempotency_key, fields=CUSTOMER_FIELDS
        )
        customer.stripe_customer_id = remote.id  # a new Stripe customer has nothing else to mirror yet
        await session.flush()
    assert customer.stripe_customer_id is not None
    return customer.stripe_customer_id


async def get_customer_for_update(session: AsyncSession, customer_id: uuid.UUID, field: str = "customer") -> Customer:
    customer = await session.get(Customer, customer_id, with_for_update=True)
    if customer is None:
        raise NotFound(f"customer {customer_id} does not exist", field=field)
    return customer


async def create_customer(
    session: AsyncSession, actor: Actor, gateway: StripeGateway, data: CustomerData, idempotency_key: str | None
) -> Customer:
    mk = MutationKey.of(actor, "createCustomer", idempotency_key, _payload(data))
    if (previous := await previous_result(session, mk)) is not None:
        return await get_customer_for_update(session, uuid.UUID(previous["id"]))
    if data.name is None:
        raise Invalid("`name` is required", field="name")
    await _validate(session, data, None)
    # the same id on every retry with this key, so Stripe's replayed answer (whose metadata
    # names it) and the local row agree
    customer = Customer(
        id=mk.local_id("customer"),
        name=data.name.strip(),
        tier=data.tier or CustomerTier.KICKSTART,
        status=CustomerStatus.ACTIVE,
        internal_team=bool(data.internal_team),
        currency="usd",
    )
    _apply_local(customer, data)
    params = stripe_customer_params(customer)
    if data.payment_method:
        params["payment_method"] = data.payment_method.strip()
        params["invoice_settings"] = {"default_payment_method": data.payment_method.strip()}
    remote = await gateway.create_customer(params, idempotency_key=mk.stripe_key("customer"), fields=CUSTOMER_FIELDS)
    mirror_customer(customer, remote)
    session.add(customer)
    await session.flush()
    await record_audit(
        session, actor, "createCustomer", "Customer", str(customer.id), after=customer_snapshot(customer)
    )
    await remember(session, mk, {"id": str(customer.id)})
    return customer


async def update_customer(
    session: AsyncSession,
    actor: Actor,
    gateway: StripeGateway,
    customer_id: uuid.UUID,
    data: CustomerData,
    idempotency_key: str | None,
) -> Customer:
    mk = MutationKey.of(actor, "updateCustomer", idempotency_key, _payload(data, customer=str(customer_id)))
    if (previous := await previous_result(session, mk)) is not None:
        return await get_customer_for_update(session, uuid.UUID(previous["id"]))
    customer = await get_customer_for_update(session, customer_id)
    await _validate(session, data, customer.id)
    before = customer_snapshot(customer)
    _apply_local(customer, data)
    touches_stripe = any(v is not None for v in (data.name, data.email, data.phone, data.address, data.payment_method))
    if touches_stripe:
        if customer.stripe_customer_id is None:
            await ensure_stripe_customer(session, gateway, customer, mk.stripe_key("customer"))
        else:
            remote = await gateway.update_customer(
                customer.stripe_customer_id,
                stripe_update_params(customer, data),
                idempotency_key=mk.stripe_key("update"),
                fields=CUSTOMER_FIELDS,
            )
            mirror_customer(customer, remote)
        if data.payment_method:
            assert customer.stripe_customer_id is not None
            payment_method = data.payment_method.strip()
            attached = await gateway.attach_payment_method(
                payment_method,
                customer.stripe_customer_id,
                idempotency_key=mk.stripe_key("attach"),
                fields={"*": "paymentMethod", "payment_method": "paymentMethod"},
            )
            remote = await gateway.update_customer(
                customer.stripe_customer_id,
                {"invoice_settings": {"default_payment_method": attached.id}, "expand": EXPAND_PAYMENT_METHOD},
                idempotency_key=mk.stripe_key("default-payment-method"),
                fields=CUSTOMER_FIELDS,
            )
            mirror_customer(customer, remote)
    await session.flush()
    await record_audit(
        session, actor, "updateCustomer", "Customer", str(customer.id), before=before, after=customer_snapshot(customer)
    )
    await remember(session, mk, {"id": str(customer.id)})
    return customer


async def suspend_customer(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID, reason: str, idempotency_key: str | None
) -> Customer:
    """Local status only (no Stripe call): a suspended customer cannot record usage."""
    mk = MutationKey.of(actor, "suspendCustomer", idempotency_key, {"customer": str(customer_id), "reason": reason})
    if (previous := await previous_result(session, mk)) is not None:
        return await get_customer_for_update(session, uuid.UUID(previous["id"]))
    reason = reason.strip()
    if not reason:
        raise Invalid("`reason` must not be empty", field="reason")
    if len(reason) > 500:
        raise Invalid("`reason` is longer than 500 characters", field="reason")
    customer = await get_customer_for_update(session, customer_id)
    if customer.status is CustomerStatus.SUSPENDED:
        raise Invalid("the customer is already suspended", field="customer")
    return await _set_status(session, actor, mk, customer, CustomerStatus.SUSPENDED, reason)


async def reactivate_customer(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID, idempotency_key: str | None
) -> Customer:
    mk = MutationKey.of(actor, "reactivateCustomer", idempotency_key, {"customer": str(customer_id)})
    if (previous := await previous_result(session, mk)) is not None:
        return await get_customer_for_update(session, uuid.UUID(previous["id"]))
    customer = await get_customer_for_update(session, customer_id)
    if customer.status is not CustomerStatus.SUSPENDED:
        raise Invalid("the customer is not suspended", field="customer")
    return await _set_status(session, actor, mk, customer, CustomerStatus.ACTIVE, None)


async def _set_status(
    session: AsyncSession,
    actor: Actor,
    mk: MutationKey,
    customer: Customer,
    status: CustomerStatus,
    suspended_reason: str | None,
) -> Customer:
    """Suspension is local only (no Stripe call): change, audit under the mutation's name, remember."""
    before = customer_snapshot(customer)
    customer.status = status
    customer.suspended_reason = suspended_reason
    await session.flush()
    await record_audit(
        session, actor, mk.mutation, "Customer", str(customer.id), before=before, after=customer_snapshot(customer)
    )
    await remember(session, mk, {"id": str(customer.id)})
    return customer
