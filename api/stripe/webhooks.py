"""Stripe webhooks: signature verification and typed views of an event's object.

`Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`; the signature is HMAC-SHA256(secret,
f"{t}.{raw body}"). Several `v1` entries are allowed (Stripe sends one per active secret while a
secret is being rolled); one match is enough. The timestamp must be within `tolerance` seconds of
now, so a captured delivery cannot be replayed later."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import stripe

DEFAULT_TOLERANCE_SECONDS = 300


class SignatureInvalid(Exception):
    """The delivery is not provably from Stripe: the message says why (never the secret)."""


def compute_signature(secret: str, timestamp: int, raw_body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + raw_body, hashlib.sha256).hexdigest()


def verify_signature(
    raw_body: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """The signed timestamp, or SignatureInvalid."""
    if not header:
        raise SignatureInvalid("the Stripe-Signature header is missing")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureInvalid("the Stripe-Signature timestamp is not a number") from None
        elif key == "v1" and value:
            signatures.append(value.strip().lower())
    if timestamp is None:
        raise SignatureInvalid("the Stripe-Signature header has no timestamp (t=)")
    if not signatures:
        raise SignatureInvalid("the Stripe-Signature header has no v1 signature")
    expected = compute_signature(secret, timestamp, raw_body)
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise SignatureInvalid("no v1 signature matches the payload and the webhook secret")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance:
        raise SignatureInvalid(f"the signature timestamp is {int(age)} s away from now (tolerance {tolerance} s)")
    return timestamp


# --- what an event carries ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventEnvelope:
    """The fields of a Stripe event Ledgerline stores next to the raw payload."""

    id: str
    type: str
    created: int
    object: dict[str, Any]
    stripe_customer_id: str | None


class MalformedEvent(ValueError):
    pass


def envelope(payload: Any) -> EventEnvelope:
    if not isinstance(payload, dict):
        raise MalformedEvent("the body is not a JSON object")
    event_id, event_type, created = payload.get("id"), payload.get("type"), payload.get("created")
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise MalformedEvent("`id` is missing or not a string")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 100:
        raise MalformedEvent("`type` is missing or not a string")
    if not isinstance(created, int):
        raise MalformedEvent("`created` is missing or not a unix timestamp")
    if not isinstance(obj, dict):
        raise MalformedEvent("`data.object` is missing")
    return EventEnvelope(event_id, event_type, created, obj, stripe_customer_of(obj))


def stripe_customer_of(obj: dict[str, Any]) -> str | None:
    """The Stripe customer an event's object belongs to (the customer itself for customer.*)."""
    if obj.get("object") == "customer":
        value: Any = obj.get("id")
    else:
        value = obj.get("customer")
        if isinstance(value, dict):
            value = value.get("id")
    return value if isinstance(value, str) else None


# Typed views: the SDK's own classes, built from the stored JSON (no request to Stripe).

StripeRefund = stripe.Refund  # for annotations outside api/stripe/


def as_customer(obj: dict[str, Any]) -> stripe.Customer:
    return stripe.Customer.construct_from(obj, None)


def as_subscription(obj: dict[str, Any]) -> stripe.Subscription:
    return stripe.Subscription.construct_from(obj, None)


def as_invoice(obj: dict[str, Any]) -> stripe.Invoice:
    return stripe.Invoice.construct_from(obj, None)


def as_charge(obj: dict[str, Any]) -> stripe.Charge:
    return stripe.Charge.construct_from(obj, None)


def as_refund(obj: dict[str, Any]) -> stripe.Refund:
    return stripe.Refund.construct_from(obj, None)
