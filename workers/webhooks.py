"""Webhook jobs: process one stored Stripe event; sweep events whose job was lost."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from arq import Retry

from api.db import utcnow
from api.runtime import Runtime
from api.webhook.receive import enqueue_processing
from api.webhook.service import RetryPolicy, due_events, process_event

log = logging.getLogger("ledgerline.webhooks")

SWEEP_GRACE = timedelta(minutes=2)  # a job normally starts within seconds; older means lost


async def process_webhook_event(ctx: dict[str, Any], event_id: str) -> str:
    """Runs the event's handler in one transaction; a failure with attempts left is retried
    (arq `Retry`) after the backoff recorded on the event."""
    runtime: Runtime = ctx["runtime"]
    async with runtime.session_factory() as session, session.begin():
        processed = await process_event(session, uuid.UUID(event_id), RetryPolicy.of(runtime.settings))
        status = processed.event.status.value if processed is not None else "MISSING"
        retry_in = processed.retry_in if processed is not None else None
    if retry_in is not None:
        raise Retry(defer=retry_in)
    return status


async def sweep_webhook_events(ctx: dict[str, Any]) -> int:
    """Queues events still waiting well after they arrived or after their retry was due (Redis
    was down when they arrived, or a worker died mid-job); arq skips ids already queued."""
    runtime: Runtime = ctx["runtime"]
    async with runtime.session_factory() as session:
        ids = await due_events(session, received_before=utcnow() - SWEEP_GRACE)
    for event_id in ids:
        await enqueue_processing(runtime, event_id)
    if ids:
        log.info("sweep queued %d webhook events", len(ids))
    return len(ids)
