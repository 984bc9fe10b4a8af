"""`POST /webhooks/stripe`: verify, store once, enqueue, answer fast.

Stripe only needs a 2xx quickly; the work happens in the `process_webhook_event` job. A bad,
missing or stale signature is refused (400) and recorded as a security event; nothing is stored.
A repeated delivery is acknowledged (200) and not processed again."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.auth.models import SecurityEventKind
from api.auth.request import request_actor
from api.auth.security import SecurityEventRecord, record_security_events
from api.runtime import Runtime
from api.stripe.webhooks import MalformedEvent, SignatureInvalid, envelope, verify_signature
from api.webhook.models import WebhookStatus
from api.webhook.service import store_event

log = logging.getLogger("ledgerline.webhooks")

PATH = "/webhooks/stripe"
MAX_BODY_BYTES = 1024 * 1024  # Stripe's events are far smaller
PROCESS_JOB = "process_webhook_event"


def job_id(event_id: uuid.UUID) -> str:
    """One queued job per event at a time (arq refuses a second job with the same id)."""
    return f"webhook-event:{event_id}"


async def enqueue_processing(runtime: Runtime, event_id: uuid.UUID, defer_seconds: float | None = None) -> bool:
    """Queue the event's processing; False when Redis refused (the sweep job picks it up later)."""
    try:
        pool = await runtime.arq()
        await pool.enqueue_job(PROCESS_JOB, str(event_id), _job_id=job_id(event_id), _defer_by=defer_seconds)
    except Exception:
        log.exception("could not enqueue webhook event %s; the sweep will retry", event_id)
        return False
    return True


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def stripe_webhook_route(runtime: Runtime) -> Route:
    async def receive(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "PAYLOAD_TOO_LARGE", f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            verify_signature(
                body,
                request.headers.get("stripe-signature"),
                runtime.settings.stripe_webhook_secret,
                tolerance=runtime.settings.stripe_webhook_tolerance_seconds,
            )
        except SignatureInvalid as exc:
            actor = dataclasses.replace(request_actor(request, None), subject="webhook:stripe")
            await record_security_events(
                runtime.session_factory,
                actor,
                [SecurityEventRecord(SecurityEventKind.WEBHOOK_SIGNATURE_INVALID, f"POST {PATH}", str(exc))],
            )
            log.warning("refused a Stripe webhook: %s", exc)
            return _error(400, "WEBHOOK_SIGNATURE_INVALID", f"invalid Stripe signature: {exc}")
        try:
            payload = json.loads(body)
            env = envelope(payload)
        except (ValueError, MalformedEvent) as exc:  # signed, yet not an event: Stripe would not send it
            return _error(400, "BAD_WEBHOOK_PAYLOAD", f"not a Stripe event: {exc}")
        async with runtime.session_factory() as session, session.begin():
            stored = await store_event(session, env, payload)
        # after commit; a duplicate still waiting (its job was lost?) is queued again, harmlessly
        if not stored.duplicate or stored.status is WebhookStatus.RECEIVED:
            await enqueue_processing(runtime, stored.event_id)
        return JSONResponse({"received": True, "id": env.id, "duplicate": stored.duplicate})

    return Route(PATH, receive, methods=["POST"])
