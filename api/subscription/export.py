"""The subscriptions export (`/exports/subscriptions.csv|json`, `ledgerline export subscriptions`)."""

from __future__ import annotations

from api.auth.permissions import Capability
from api.export.dataset import Param, TableDataset, fields, range_params
from api.export.params import Params
from api.subscription.models import Subscription, SubscriptionStatus
from api.subscription.service import SubscriptionFilter, subscription_conditions

PARAMS = [
    Param("status", "Statuses, comma-separated: TRIALING, ACTIVE, PAST_DUE, PAUSED, UNPAID, INCOMPLETE, CANCELED."),
    Param("customer", "Customer id (global id or UUID)."),
    *range_params("Created"),
]


def parse_filter(params: Params) -> SubscriptionFilter:
    return SubscriptionFilter(
        statuses=params.choices("status", SubscriptionStatus),
        customer_id=params.node_id("customer", "Customer"),
        created=params.date_range(preset="preset"),
    )


SUBSCRIPTIONS: TableDataset[SubscriptionFilter] = TableDataset(
    name="subscriptions",
    noun="subscriptions",
    read=[Capability.SUBSCRIPTION_READ],
    params=PARAMS,
    parse=parse_filter,
    columns=fields(
        Subscription.id,
        Subscription.customer_id,
        Subscription.status,
        Subscription.currency,
        Subscription.current_period_start,
        Subscription.current_period_end,
        Subscription.trial_end,
        Subscription.cancel_at_period_end,
        Subscription.pause_behavior,
        Subscription.pause_resumes_at,
        Subscription.canceled_at,
        Subscription.stripe_subscription_id,
        Subscription.created_at,
        Subscription.updated_at,
    ),
    model=Subscription,
    conditions=lambda flt, _: subscription_conditions(flt),
    order=[Subscription.created_at, Subscription.id],
)
