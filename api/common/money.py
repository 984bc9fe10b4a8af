"""Money is integer minor units plus an ISO currency; this turns it into a decimal amount."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from api.errors import Invalid

# ISO 4217 currencies whose minor unit is not 1/100
_EXPONENTS = {
    "bif": 0,
    "clp": 0,
    "djf": 0,
    "gnf": 0,
    "jpy": 0,
    "kmf": 0,
    "krw": 0,
    "mga": 0,
    "pyg": 0,
    "rwf": 0,
    "ugx": 0,
    "vnd": 0,
    "vuv": 0,
    "xaf": 0,
    "xof": 0,
    "xpf": 0,
    "bhd": 3,
    "jod": 3,
    "kwd": 3,
    "omr": 3,
    "tnd": 3,
}


def currency_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.lower(), 2)


def minor_to_decimal(minor_units: int, currency: str) -> Decimal:
    exponent = currency_exponent(currency)
    return Decimal(minor_units).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


def format_minor(minor_units: int, currency: str) -> str:
    """The decimal string of an amount ("12.50"), with integer arithmetic only (hot path)."""
    exponent = currency_exponent(currency)
    if exponent == 0:
        return str(minor_units)
    whole, fraction = divmod(abs(minor_units), 10**exponent)
    return f"{'-' if minor_units < 0 else ''}{whole}.{fraction:0{exponent}d}"


def decimal_to_minor(amount: Decimal, currency: str) -> int:
    return int((amount * (10 ** currency_exponent(currency))).to_integral_exact())


def parse_amount(text: str, currency: str, field: str) -> int:
    """A decimal string in `currency` ("12.50" USD) → minor units (1250). Refuses more decimals
    than the currency has (no silent rounding) and non-numbers, naming `field`."""
    exponent = currency_exponent(currency)
    try:
        value = Decimal(text.strip())
        exact = value.is_finite() and value == value.quantize(Decimal(1).scaleb(-exponent))
    except (InvalidOperation, AttributeError):
        raise Invalid(f'`{field}` must be a decimal amount such as "12.50"', field=field) from None
    if not value.is_finite() or abs(value) > Decimal(10) ** 12:
        raise Invalid(f'`{field}` must be a decimal amount such as "12.50"', field=field)
    if not exact:
        raise Invalid(f"`{field}` has more than {exponent} decimals for {currency.upper()}", field=field)
    return decimal_to_minor(value, currency)


@dataclass(frozen=True, slots=True)
class MoneyAmount:
    """An amount as a client sends it: a decimal string and an ISO 4217 currency."""

    amount: str
    currency: str

    def minor_units(self, field: str, expected_currency: str | None = None) -> int:
        """Minor units, checking the currency (`field`.currency) and the decimals (`field`.amount)."""
        currency = self.currency.strip().lower()
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise Invalid(f"`{field}.currency` must be an ISO 4217 code such as `usd`", field=f"{field}.currency")
        if expected_currency is not None and currency != expected_currency.lower():
            raise Invalid(
                f"`{field}.currency` must be {expected_currency.upper()}, not {currency.upper()}",
                field=f"{field}.currency",
            )
        return parse_amount(self.amount, currency, f"{field}.amount")

    def to_json(self) -> dict[str, str]:
        return {"amount": self.amount, "currency": self.currency}
