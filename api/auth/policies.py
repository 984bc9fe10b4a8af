"""Policies that depend on amounts, not only on roles."""

from __future__ import annotations

from decimal import Decimal

from api.auth.permissions import Capability, required_roles
from api.auth.principal import Principal
from api.auth.roles import Role
from api.common.money import decimal_to_minor, minor_to_decimal
from api.errors import Forbidden, Invalid


def check_refund_or_credit_amount(principal: Principal, amount_minor: int, currency: str, limit: Decimal) -> None:
    """Support may refund or credit up to `limit` (SUPPORT_REFUND_LIMIT) per operation, in the
    operation's currency; the other roles that may refund have no cap. Call it before any
    side effect."""
    if amount_minor <= 0:
        raise Invalid("`amount` must be greater than zero", field="amount")
    if principal.role is not Role.SUPPORT:
        return
    cap_minor = decimal_to_minor(limit, currency)
    if amount_minor > cap_minor:
        over = minor_to_decimal(amount_minor, currency)
        raise Forbidden(
            f"support may refund or credit at most {minor_to_decimal(cap_minor, currency)} {currency.upper()} "
            f"at a time; {over} {currency.upper()} needs one of: "
            + ", ".join(r for r in required_roles(Capability.REFUND_CREDIT) if r != Role.SUPPORT.name),
            required_roles=[r for r in required_roles(Capability.REFUND_CREDIT) if r != Role.SUPPORT.name],
            limit=str(minor_to_decimal(cap_minor, currency)),
        )
