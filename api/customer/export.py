"""The customers export (`/exports/customers.csv|json`, `ledgerline export customers`).

Contact details (email, phone, address, tax id) need CUSTOMER_PII_READ and the card on file
PAYMENT_METHOD_READ, as the GraphQL fields do; without them those columns are withheld.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from api.auth.permissions import Capability
from api.customer.models import Customer, CustomerStatus, CustomerTier
from api.customer.service import CustomerFilter, customer_conditions
from api.export.dataset import Column, Param, TableDataset, fields, range_params
from api.export.params import Params

PII = Capability.CUSTOMER_PII_READ

COLUMNS: list[Column[Row[Any]]] = [
    *fields(Customer.id, Customer.name),
    *fields(
        Customer.email,
        Customer.phone,
        Customer.address_line1,
        Customer.address_line2,
        Customer.address_city,
        Customer.address_state,
        Customer.address_postal_code,
        Customer.address_country,
        Customer.tax_id,
        capability=PII,
    ),
    *fields(
        Customer.payment_method_brand,
        Customer.payment_method_last4,
        Customer.payment_method_exp_month,
        Customer.payment_method_exp_year,
        capability=Capability.PAYMENT_METHOD_READ,
    ),
    *fields(
        Customer.tier,
        Customer.industry,
        Customer.status,
        Customer.internal_team,
        Customer.currency,
        Customer.external_id,
        Customer.stripe_customer_id,
        Customer.suspended_reason,
        Customer.created_at,
        Customer.updated_at,
    ),
]

PARAMS = [
    Param("search", "Part of the name or email, or an exact external or Stripe id (as the GraphQL `search`)."),
    Param("tier", "Tiers, comma-separated: KICKSTART, PRO, CUSTOM."),
    Param("status", "Statuses, comma-separated: TRIAL, ACTIVE, PAST_DUE, SUSPENDED, CANCELED."),
    Param("industry", "Industry (case-insensitive)."),
    Param("internalTeam", "true or false."),
    *range_params("Created"),
]


def parse_filter(params: Params) -> CustomerFilter:
    return CustomerFilter(
        search=params.text("search"),
        tiers=params.choices("tier", CustomerTier),
        statuses=params.choices("status", CustomerStatus),
        industry=params.text("industry"),
        internal_team=params.boolean("internalTeam"),
        created=params.date_range(preset="preset"),
    )


CUSTOMERS: TableDataset[CustomerFilter] = TableDataset(
    name="customers",
    noun="customers",
    read=[Capability.CUSTOMER_READ],
    params=PARAMS,
    parse=parse_filter,
    columns=COLUMNS,
    model=Customer,
    conditions=lambda flt, _: customer_conditions(flt),
    order=[Customer.created_at, Customer.id],
)
