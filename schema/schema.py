"""The Strawberry schema: every domain's queries merged into one root."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import ASTValidationRule
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ParserCache, ValidationCache
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from api.auth.permissions import Capability, role_capabilities
from api.auth.roles import Role
from api.settings import Settings
from schema.access.mutations import AccessMutations
from schema.access.queries import AccessQueries
from schema.alert.mutations import AlertMutations
from schema.alert.queries import AlertQueries
from schema.alert.subscriptions import AlertSubscriptions
from schema.audit.queries import AuditQueries
from schema.catalog.queries import CatalogQueries
from schema.coupon.mutations import CouponMutations
from schema.customer.mutations import CustomerMutations
from schema.customer.queries import CustomerQueries
from schema.dunning.mutations import DunningMutations
from schema.dunning.queries import DunningQueries
from schema.errors import ErrorPolicy
from schema.invoice.mutations import InvoiceMutations
from schema.invoice.queries import InvoiceQueries
from schema.permissions import field_capability
from schema.reconciliation.mutations import ReconciliationMutations
from schema.reconciliation.queries import ReconciliationQueries
from schema.revenue.queries import RevenueQueries
from schema.security import RecordDenials
from schema.subscription.mutations import SubscriptionChangeQueries, SubscriptionMutations
from schema.subscription.queries import SubscriptionQueries
from schema.usage.mutations import UsageMutations
from schema.usage.queries import UsageQueries
from schema.usage.types import USAGE_VALUE_SCALAR, UsageValue
from schema.viewer import ViewerQueries
from schema.webhook.mutations import WebhookMutations
from schema.webhook.queries import WebhookQueries

Query = merge_types(
    "Query",
    (
        ViewerQueries,
        AccessQueries,
        CustomerQueries,
        SubscriptionQueries,
        SubscriptionChangeQueries,
        InvoiceQueries,
        CatalogQueries,
        UsageQueries,
        AuditQueries,
        WebhookQueries,
        ReconciliationQueries,
        AlertQueries,
        DunningQueries,
        RevenueQueries,
    ),
)


Mutation = merge_types(
    "Mutation",
    (
        AccessMutations,
        CustomerMutations,
        SubscriptionMutations,
        WebhookMutations,
        InvoiceMutations,
        CouponMutations,
        ReconciliationMutations,
        UsageMutations,
        DunningMutations,
        AlertMutations,
    ),
)

# "Subscription" names the billing object type, so the root of subscription operations is named
# after its role
SubscriptionRoot = merge_types("SubscriptionRoot", (AlertSubscriptions,))


class RoleSchema(strawberry.Schema):
    """The schema as one role sees it: fields and operations it may not use are left out."""

    def __init__(self, capabilities: frozenset[Capability], **kwargs: Any) -> None:
        self.visible_capabilities = capabilities  # read by get_fields while the schema is built
        super().__init__(**kwargs)

    def get_fields(self, type_definition: StrawberryObjectDefinition) -> list[StrawberryField]:
        return [
            f
            for f in type_definition.fields
            if (capability := field_capability(f)) is None or capability in self.visible_capabilities
        ]


CONFIG = StrawberryConfig(auto_camel_case=True, scalar_map={UsageValue: USAGE_VALUE_SCALAR})


def build_schema(settings: Settings, role: Role | None = None) -> strawberry.Schema:
    if role is not None:
        capabilities = role_capabilities(role)
        mutations = Mutation.__strawberry_definition__.fields  # type: ignore[attr-defined]
        may_mutate = any(field_capability(f) in capabilities | {None} for f in mutations)
        may_subscribe = bool(subscription_capabilities() & (capabilities | {None}))
        return RoleSchema(
            capabilities,
            query=Query,
            mutation=Mutation if may_mutate else None,
            subscription=SubscriptionRoot if may_subscribe else None,
            config=CONFIG,
        )
    # The depth and alias rules are built once: rule classes are stateless, and the validation
    # cache is keyed by them (rules rebuilt per request made every validation a cache miss).
    limits: list[type[ASTValidationRule]] = [
        depth_validator(settings.max_query_depth, None),
        alias_validator(settings.max_aliases),
    ]
    # extensions are passed as factories: one fresh instance per request (no shared state)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=SubscriptionRoot,
        extensions=[
            lambda: AddValidationRules(limits),
            lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            ErrorPolicy,
            RecordDenials,
        ],
        config=CONFIG,
    )


def subscription_capabilities() -> frozenset[Capability | None]:
    """What each subscription field needs (None: nothing beyond being authenticated)."""
    fields = SubscriptionRoot.__strawberry_definition__.fields  # type: ignore[attr-defined]
    return frozenset(field_capability(f) for f in fields)


def print_sdl(settings: Settings | None = None, role: Role | None = None) -> str:
    return build_schema(settings or Settings(), role).as_str() + "\n"
