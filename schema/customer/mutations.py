"""createCustomer, updateCustomer (local fields and the Stripe customer), suspendCustomer /
reactivateCustomer (local status only)."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.record import Actor
from api.auth.permissions import Capability
from api.customer import commands
from api.customer.commands import AddressData, CustomerData
from api.customer.models import Customer as CustomerModel
from schema.context import Info
from schema.customer.types import Customer, CustomerTierEnum
from schema.mutations import UserError, run_mutation
from schema.permissions import guarded
from schema.scalars import parse_id


def idempotency_key_field() -> Any:
    """A fresh field each time (a StrawberryField belongs to one class)."""
    return strawberry.field(
        default=None,
        description="Repeating a call with the same key returns the first result and changes nothing more.",
    )


@strawberry.input
class AddressInput:
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = strawberry.field(default=None, description="ISO 3166-1 alpha-2, e.g. `FR`.")

    def to_data(self) -> AddressData:
        return AddressData(self.line1, self.line2, self.city, self.state, self.postal_code, self.country)


@strawberry.input
class CreateCustomerInput:
    name: str
    email: str | None = None
    phone: str | None = None
    address: AddressInput | None = None
    tax_id: str | None = None
    tier: CustomerTierEnum | None = strawberry.field(default=None, description="KICKSTART unless given.")  # type: ignore[valid-type]
    industry: str | None = None
    internal_team: bool = False
    currency: str = strawberry.field(default="usd", description="ISO 4217, the currency the customer is billed in.")
    external_id: str | None = strawberry.field(default=None, description="The id in the product's own backend.")
    payment_method: str | None = strawberry.field(
        default=None, description="A Stripe PaymentMethod id (or test token like `pm_card_visa`) to set as default."
    )
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input(description="Only the fields given change.")
class UpdateCustomerInput:
    customer: strawberry.ID
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: AddressInput | None = strawberry.field(default=None, description="The parts given change.")
    tax_id: str | None = None
    tier: CustomerTierEnum | None = None  # type: ignore[valid-type]
    industry: str | None = None
    internal_team: bool | None = None
    currency: str | None = None
    external_id: str | None = None
    payment_method: str | None = strawberry.field(
        default=None, description="Attach this Stripe PaymentMethod and make it the default."
    )
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input
class SuspendCustomerInput:
    customer: strawberry.ID
    reason: str
    idempotency_key: str | None = idempotency_key_field()


@strawberry.input
class ReactivateCustomerInput:
    customer: strawberry.ID
    idempotency_key: str | None = idempotency_key_field()


@strawberry.type
class CustomerPayload:
    customer: Customer | None
    user_errors: list[UserError]


def _data(value: CreateCustomerInput | UpdateCustomerInput) -> CustomerData:
    return CustomerData(
        name=value.name,
        email=value.email,
        phone=value.phone,
        address=value.address.to_data() if value.address else None,
        tax_id=value.tax_id,
        tier=value.tier,
        industry=value.industry,
        internal_team=value.internal_team,
        currency=value.currency,
        external_id=value.external_id,
        payment_method=value.payment_method,
    )


async def _payload(info: Info, work: Any) -> CustomerPayload:
    outcome = await run_mutation(info, work)
    model: CustomerModel | None = outcome.value
    return CustomerPayload(customer=Customer.from_model(model) if model else None, user_errors=outcome.user_errors)


@strawberry.type
class CustomerMutations:
    @guarded(
        Capability.CUSTOMER_EDIT,
        description="Create a customer here and in Stripe (with a default payment method if given).",
    )
    async def create_customer(self, info: Info, input: CreateCustomerInput) -> CustomerPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> CustomerModel:
            return await commands.create_customer(
                session, actor, info.context.stripe, _data(input), input.idempotency_key
            )

        return await _payload(info, work)

    @guarded(Capability.CUSTOMER_EDIT, description="Edit a customer's local fields and its Stripe customer.")
    async def update_customer(self, info: Info, input: UpdateCustomerInput) -> CustomerPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> CustomerModel:
            customer_id = parse_id(input.customer, "Customer", "customer")
            return await commands.update_customer(
                session, actor, info.context.stripe, customer_id, _data(input), input.idempotency_key
            )

        return await _payload(info, work)

    @guarded(Capability.CUSTOMER_SUSPEND, description="Suspend an account (local status; no Stripe call).")
    async def suspend_customer(self, info: Info, input: SuspendCustomerInput) -> CustomerPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> CustomerModel:
            customer_id = parse_id(input.customer, "Customer", "customer")
            return await commands.suspend_customer(session, actor, customer_id, input.reason, input.idempotency_key)

        return await _payload(info, work)

    @guarded(Capability.CUSTOMER_SUSPEND, description="Lift a suspension (local status; no Stripe call).")
    async def reactivate_customer(self, info: Info, input: ReactivateCustomerInput) -> CustomerPayload | None:
        async def work(session: AsyncSession, actor: Actor) -> CustomerModel:
            customer_id = parse_id(input.customer, "Customer", "customer")
            return await commands.reactivate_customer(session, actor, customer_id, input.idempotency_key)

        return await _payload(info, work)
