"""Stripe's exceptions → Ledgerline's errors.

- a card decline → `Rejected` with Stripe's code and message (a user error; nothing changes locally);
- a request Stripe refused (`InvalidRequestError`) → `Rejected` naming the parameter;
- the same Idempotency-Key with other parameters → `IDEMPOTENCY_KEY_REUSED`;
- Stripe unreachable, 5xx, rate limited, bad API key → `ProviderError` (STRIPE_ERROR): the
  transaction rolls back, and a retry with the same idempotencyKey is safe."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import stripe

from api.errors import LedgerlineError, ProviderError, Rejected

log = logging.getLogger("ledgerline.stripe")

UNREACHABLE = "Stripe is unreachable, nothing was changed; retry with the same idempotencyKey"


def _message(exc: stripe.StripeError) -> str:
    return exc.user_message or (exc.error.message if exc.error and exc.error.message else None) or str(exc)


def translate(exc: stripe.StripeError, fields: Mapping[str, str] | None = None) -> LedgerlineError:
    """`fields` maps Stripe parameters to the mutation's input fields (e.g. `payment_method` →
    `paymentMethod`), so the user error names what the client sent; `*` names the field a card
    error without a parameter is about."""
    fields = fields or {}
    if isinstance(exc, stripe.CardError):
        param = exc.param or "payment_method"
        return Rejected(_message(exc), code=exc.code or "card_error", field=fields.get(param, fields.get("*")))
    if isinstance(exc, stripe.IdempotencyError):
        return Rejected(
            "this idempotencyKey was already used with different parameters",
            code="IDEMPOTENCY_KEY_REUSED",
            field="idempotencyKey",
        )
    if isinstance(exc, stripe.InvalidRequestError):
        param = exc.param
        message = _message(exc)
        if param:
            message = f"Stripe rejected `{param}`: {message}"
        field = fields.get(param) if param else None
        return Rejected(message, code=exc.code or "invalid_request", field=field, stripeParam=param)
    if isinstance(exc, stripe.APIConnectionError):
        return ProviderError(UNREACHABLE)
    if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        log.error("Stripe refused the API key: %s", exc)
        return ProviderError("Stripe refused Ledgerline's API key, nothing was changed")
    log.warning("Stripe failed: %s (HTTP %s)", exc, exc.http_status)
    return ProviderError(
        f"Stripe failed (HTTP {exc.http_status or '?'}), nothing was changed; retry with the same idempotencyKey"
    )
