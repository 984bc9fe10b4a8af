"""Queue an email in the caller's transaction; deliver queued emails after it committed.

Delivery runs outside the transactions that queued the emails (habit 2: side effects after
commit), one short transaction per email opened by the caller (the worker job): the email is
locked (SKIP LOCKED, so concurrent deliverers never send one twice), sent, and marked SENT. A
refused or unreachable server leaves the email PENDING for the next round, up to MAX_ATTEMPTS,
then FAILED."""

from __future__ import annotations

import logging
import smtplib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import utcnow
from api.mail.models import EmailStatus, OutboundEmail
from api.mail.smtp import Mail, SmtpSender
from api.mail.templates import EmailTemplate, render
from api.settings import Settings

log = logging.getLogger("ledgerline.mail")

MAX_ATTEMPTS = 5
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class NewEmail:
    to: str
    template: EmailTemplate
    values: Mapping[str, object]
    dedup_key: str
    customer_id: uuid.UUID | None = None
    related_id: uuid.UUID | None = None


async def queue_email(session: AsyncSession, email: NewEmail) -> bool:
    """Adds the email to the outbox unless one with the same `dedup_key` is there; True when new."""
    rendered = render(email.template, dict(email.values))
    stmt = (
        insert(OutboundEmail)
        .values(
            id=uuid.uuid4(),
            to_address=email.to,
            subject=rendered.subject[:300],
            body=rendered.body,
            template=email.template.value,
            dedup_key=email.dedup_key,
            customer_id=email.customer_id,
            related_id=email.related_id,
            status=EmailStatus.PENDING,
            attempts=0,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[OutboundEmail.dedup_key])
        .returning(OutboundEmail.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


def make_sender(settings: Settings) -> SmtpSender | None:
    """None when SMTP_URL is unset: emails then wait in the outbox (`ledgerline run` sets it to its sink)."""
    return SmtpSender(settings.smtp_url, settings.email_from) if settings.smtp_url else None


async def pending_email_ids(session: AsyncSession, limit: int = 500) -> list[uuid.UUID]:
    rows = await session.execute(
        select(OutboundEmail.id)
        .where(OutboundEmail.status == EmailStatus.PENDING)
        .order_by(OutboundEmail.created_at, OutboundEmail.id)
        .limit(limit)
    )
    return list(rows.scalars())


async def deliver_email(session: AsyncSession, email_id: uuid.UUID, sender: SmtpSender) -> bool | None:
    """Send one pending email, locked (SKIP LOCKED) for the time of the send, and record the
    outcome. True: sent; False: refused this time; None: taken by another deliverer or done."""
    email = (
        await session.execute(
            select(OutboundEmail)
            .where(OutboundEmail.id == email_id, OutboundEmail.status == EmailStatus.PENDING)
            .with_for_update(skip_locked=True)
        )
    ).scalar_one_or_none()
    if email is None:
        return None
    email.attempts += 1
    try:
        await sender.send(Mail(email.to_address, email.subject, email.body))
    except (OSError, smtplib.SMTPException) as exc:
        email.last_error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
        if email.attempts >= MAX_ATTEMPTS:
            email.status = EmailStatus.FAILED
        log.warning("email %s to %s not sent (attempt %d): %s", email.id, email.to_address, email.attempts, exc)
        await session.flush()
        return False
    email.status, email.sent_at, email.last_error = EmailStatus.SENT, utcnow(), None
    await session.flush()
    log.info("email sent", extra={"email_id": str(email.id), "to": email.to_address, "subject": email.subject})
    return True
