"""Money is integer minor units plus an ISO currency; this turns it into a decimal amount."""

from __future__ import annotations

from decimal import Decimal

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


def decimal_to_minor(amount: Decimal, currency: str) -> int:
    return int((amount * (10 ** currency_exponent(currency))).to_integral_exact())
