"""The Strawberry schema: every domain's queries merged into one root."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.settings import Settings
from schema.audit.queries import AuditQueries
from schema.catalog.queries import CatalogQueries
from schema.customer.queries import CustomerQueries
from schema.errors import ErrorPolicy
from schema.invoice.queries import InvoiceQueries
from schema.subscription.queries import SubscriptionQueries
from schema.usage.queries import UsageQueries
from schema.viewer import ViewerQueries

Query = merge_types(
    "Query",
    (
        ViewerQueries,
        CustomerQueries,
        SubscriptionQueries,
        InvoiceQueries,
        CatalogQueries,
        UsageQueries,
        AuditQueries,
    ),
)


def build_schema(settings: Settings) -> strawberry.Schema:
    # extensions are passed as factories: one fresh instance per request (no shared state)
    return strawberry.Schema(
        query=Query,
        extensions=[
            lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
            lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
            lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            ErrorPolicy,
        ],
        config=StrawberryConfig(auto_camel_case=True),
    )


def print_sdl(settings: Settings | None = None) -> str:
    return build_schema(settings or Settings()).as_str() + "\n"
