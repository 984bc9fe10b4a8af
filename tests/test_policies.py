"""The support cap on refunds and credits (SUPPORT_REFUND_LIMIT)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from api.auth.policies import check_refund_or_credit_amount
from api.auth.principal import Principal
from api.auth.roles import Role
from api.errors import Forbidden, Invalid

LIMIT = Decimal("100.00")


def staff(role: Role) -> Principal:
    return Principal.staff(f"{role.value}@test", role)


@pytest.mark.parametrize(("amount", "currency"), [(10000, "usd"), (1, "usd"), (9999, "eur"), (100, "jpy")])
def test_support_within_the_cap(amount: int, currency: str) -> None:
    check_refund_or_credit_amount(staff(Role.SUPPORT), amount, currency, LIMIT)


@pytest.mark.parametrize(("amount", "currency"), [(10001, "usd"), (500000, "eur"), (101, "jpy"), (100001, "kwd")])
def test_support_over_the_cap_is_forbidden_and_says_the_limit(amount: int, currency: str) -> None:
    with pytest.raises(Forbidden) as raised:
        check_refund_or_credit_amount(staff(Role.SUPPORT), amount, currency, LIMIT)
    assert raised.value.extensions["code"] == "FORBIDDEN"
    assert raised.value.extensions["requiredRoles"] == ["OWNER", "FINANCE"]
    assert currency.upper() in raised.value.message


def test_cap_is_in_the_operations_currency_minor_units() -> None:
    # 100.00 in JPY (no minor unit) is 100 yen; in KWD (3 decimals) it is 100000 fils
    check_refund_or_credit_amount(staff(Role.SUPPORT), 100000, "kwd", LIMIT)
    with pytest.raises(Forbidden):
        check_refund_or_credit_amount(staff(Role.SUPPORT), 101, "jpy", LIMIT)


@pytest.mark.parametrize("role", [Role.OWNER, Role.FINANCE])
def test_owner_and_finance_have_no_cap(role: Role) -> None:
    check_refund_or_credit_amount(staff(role), 10_000_000, "usd", LIMIT)


def test_amount_must_be_positive() -> None:
    with pytest.raises(Invalid) as raised:
        check_refund_or_credit_amount(staff(Role.OWNER), 0, "usd", LIMIT)
    assert raised.value.field == "amount"


def test_a_custom_limit_applies() -> None:
    check_refund_or_credit_amount(staff(Role.SUPPORT), 25000, "usd", Decimal("250"))
    with pytest.raises(Forbidden):
        check_refund_or_credit_amount(staff(Role.SUPPORT), 25001, "usd", Decimal("250"))
