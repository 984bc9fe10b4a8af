"""The permission matrix: the single source of truth for who may read what and do what.

Each capability lists the staff roles that hold it and the integration scopes that grant it.
The GraphQL schema reads this table (field guards, the `@requires` directive in the SDL,
`ledgerline schema --role`); services read it for the actions they perform. Adding a role or
changing a rule is a change of one line here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from api.auth.principal import Principal, PrincipalKind
from api.auth.roles import Role, Scope
from api.errors import Forbidden

OWNER, OPERATIONS, FINANCE, SUPPORT, ANALYST = Role.OWNER, Role.OPERATIONS, Role.FINANCE, Role.SUPPORT, Role.ANALYST
EVERY_ROLE = frozenset(Role)


class Capability(enum.StrEnum):
    # reads
    CUSTOMER_READ = "customer:read"  # name, tier, status, dates, health
    CUSTOMER_PII_READ = "customer.pii:read"  # email, phone, address, tax id
    PAYMENT_METHOD_READ = "payment_method:read"  # brand, last4, expiry
    SUBSCRIPTION_READ = "subscription:read"
    INVOICE_READ = "invoice:read"  # invoices, payments, refunds, amounts
    USAGE_READ = "usage:read"
    CATALOG_READ = "catalog:read"
    REVENUE_READ = "revenue:read"  # MRR, churn, LTV ...
    AUDIT_READ = "audit:read"
    AUDIT_NETWORK_READ = "audit.network:read"  # an audit entry's IP and user agent
    AUDIT_CHAIN_READ = "audit.chain:read"
    SECURITY_EVENT_READ = "security_event:read"
    WEBHOOK_LOG_READ = "webhook_log:read"  # with raw payloads
    ACCESS_ADMIN = "access:admin"  # API keys and staff roles, read and write
    # actions
    CUSTOMER_EDIT = "customer:edit"
    CUSTOMER_SUSPEND = "customer:suspend"  # suspend / reactivate
    SUBSCRIPTION_CHANGE = "subscription:change"  # seats, plan, cancel, pause, resume
    TRIAL_EXTEND = "trial:extend"
    INVOICE_MANAGE = "invoice:manage"  # create, finalize, send, void, retry payment
    REFUND_CREDIT = "refund_credit:issue"  # support: up to SUPPORT_REFUND_LIMIT
    COUPON_MANAGE = "coupon:manage"  # create coupons and promotion codes (applying one is a subscription change)
    BILLING_OPERATIONS = "billing_ops:run"  # dunning actions, reconciliation, webhook reprocess
    GDPR_EXPORT = "gdpr:export"
    GDPR_ERASE = "gdpr:erase"
    DATA_EXPORT = "data:export"  # CSV/JSON exports of what the role can read
    USAGE_WRITE = "usage:write"  # record usage events
    CATALOG_MANAGE = "catalog:manage"  # meters and quotas: what is billed and how much is allowed
    DUNNING_POLICY_MANAGE = "dunning_policy:manage"  # the steps taken after a failed payment
    ALERT_ACKNOWLEDGE = "alert:acknowledge"  # mark an alert handled (only alerts the caller may see)


@dataclass(frozen=True, slots=True)
class Rule:
    roles: frozenset[Role]
    scopes: frozenset[Scope] = frozenset()


def _rule(roles: Iterable[Role], scopes: Iterable[Scope] = ()) -> Rule:
    return Rule(frozenset(roles), frozenset(scopes))


# fmt: off
MATRIX: dict[Capability, Rule] = {
    Capability.CUSTOMER_READ:       _rule(EVERY_ROLE, [Scope.CUSTOMERS_READ]),
    Capability.CUSTOMER_PII_READ:   _rule([OWNER, OPERATIONS, FINANCE, SUPPORT], [Scope.CUSTOMERS_READ]),
    Capability.PAYMENT_METHOD_READ: _rule([OWNER, FINANCE]),  # never an integration
    Capability.SUBSCRIPTION_READ:   _rule(EVERY_ROLE, [Scope.CUSTOMERS_READ]),
    Capability.INVOICE_READ:        _rule(EVERY_ROLE, [Scope.INVOICES_READ]),
    Capability.USAGE_READ:          _rule(EVERY_ROLE, [Scope.CUSTOMERS_READ, Scope.USAGE_WRITE]),
    Capability.CATALOG_READ:        _rule(EVERY_ROLE, [Scope.CUSTOMERS_READ, Scope.SUBSCRIPTIONS_WRITE]),
    Capability.REVENUE_READ:        _rule([OWNER, FINANCE, ANALYST]),
    Capability.AUDIT_READ:          _rule([OWNER, OPERATIONS, FINANCE]),
    Capability.AUDIT_NETWORK_READ:  _rule([OWNER]),
    Capability.AUDIT_CHAIN_READ:    _rule([OWNER]),
    Capability.SECURITY_EVENT_READ: _rule([OWNER, OPERATIONS]),
    Capability.WEBHOOK_LOG_READ:    _rule([OWNER, OPERATIONS, FINANCE]),
    Capability.ACCESS_ADMIN:        _rule([OWNER]),
    Capability.CUSTOMER_EDIT:       _rule([OWNER, OPERATIONS, FINANCE, SUPPORT], [Scope.CUSTOMERS_WRITE]),
    Capability.CUSTOMER_SUSPEND:    _rule([OWNER, OPERATIONS, FINANCE]),
    Capability.SUBSCRIPTION_CHANGE: _rule([OWNER, OPERATIONS, FINANCE], [Scope.SUBSCRIPTIONS_WRITE]),
    Capability.TRIAL_EXTEND:        _rule([OWNER, OPERATIONS, FINANCE, SUPPORT], [Scope.SUBSCRIPTIONS_WRITE]),
    Capability.INVOICE_MANAGE:      _rule([OWNER, FINANCE]),
    Capability.REFUND_CREDIT:       _rule([OWNER, FINANCE, SUPPORT]),
    Capability.COUPON_MANAGE:       _rule([OWNER, FINANCE]),  # price cuts are revenue decisions, like credits
    Capability.BILLING_OPERATIONS:  _rule([OWNER, OPERATIONS, FINANCE]),
    Capability.GDPR_EXPORT:         _rule([OWNER, OPERATIONS]),
    Capability.GDPR_ERASE:          _rule([OWNER]),
    Capability.DATA_EXPORT:         _rule(EVERY_ROLE),
    Capability.USAGE_WRITE:         _rule([OWNER], [Scope.USAGE_WRITE]),
    Capability.CATALOG_MANAGE:      _rule([OWNER, FINANCE]),  # pricing decisions, like coupons
    Capability.DUNNING_POLICY_MANAGE: _rule([OWNER, FINANCE]),
    Capability.ALERT_ACKNOWLEDGE:   _rule([OWNER, OPERATIONS, FINANCE, SUPPORT]),  # analysts only read
}
# fmt: on

assert set(MATRIX) == set(Capability), "every capability needs a rule"


def role_capabilities(role: Role) -> frozenset[Capability]:
    return frozenset(c for c, rule in MATRIX.items() if role in rule.roles)


def scope_capabilities(scopes: Iterable[Scope]) -> frozenset[Capability]:
    granted = set(scopes)
    return frozenset(c for c, rule in MATRIX.items() if rule.scopes & granted)


def capabilities_of(principal: Principal) -> frozenset[Capability]:
    if principal.kind is PrincipalKind.STAFF:
        return role_capabilities(principal.role) if principal.role is not None else frozenset()
    return scope_capabilities(principal.scopes)


def required_roles(capability: Capability) -> list[str]:
    """Role names in a stable order (the order of the Role enum), as FORBIDDEN errors and the SDL show them."""
    return [role.name for role in Role if role in MATRIX[capability].roles]


def required_scopes(capability: Capability) -> list[str]:
    return sorted(scope.value for scope in MATRIX[capability].scopes)


def forbidden(capability: Capability, what: str) -> Forbidden:
    return Forbidden(
        f"not allowed to {what}",
        required_roles=required_roles(capability),
        requiredScopes=required_scopes(capability),
    )


def require(principal_capabilities: frozenset[Capability], capability: Capability, what: str) -> None:
    if capability not in principal_capabilities:
        raise forbidden(capability, what)
