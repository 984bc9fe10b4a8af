"""Trials ending soon: an alert and an email to the customer, once per trial end date (a trial
extended to a new date warns again, once)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.alert.models import AlertKind, AlertSeverity
from api.alert.service import NewAlert, raise_alert
from api.customer.models import Customer
from api.mail.service import NewEmail, queue_email
from api.mail.templates import EmailTemplate
from api.subscription.models import Subscription, SubscriptionStatus

TRIAL_NOTICE = timedelta(days=3)


async def warn_trials_ending(session: AsyncSession, now: datetime) -> int:
    """Trials ending within TRIAL_NOTICE that were not warned about yet; how many were warned now."""
    rows = await session.execute(
        select(Subscription, Customer)
        .join(Customer, Customer.id == Subscription.customer_id)
        .where(
            Subscription.status == SubscriptionStatus.TRIALING,
            Subscription.trial_end > now,
            Subscription.trial_end <= now + TRIAL_NOTICE,
        )
        .order_by(Subscription.trial_end, Subscription.id)
    )
    warned = 0
    for sub, customer in rows.all():
        assert sub.trial_end is not None
        key = f"trial_ending:{sub.id}:{sub.trial_end.isoformat()}"
        ends = sub.trial_end.strftime("%d %B %Y")
        alert = await raise_alert(
            session,
            NewAlert(
                kind=AlertKind.TRIAL_ENDING,
                severity=AlertSeverity.INFO,
                message=f"The trial of {customer.name} ends on {ends}",
                dedup_key=key,
                customer_id=customer.id,
                details={"subscription_id": str(sub.id), "trial_end": sub.trial_end.isoformat()},
            ),
        )
        if alert is None:
            continue  # warned already
        warned += 1
        if customer.email:
            await queue_email(
                session,
                NewEmail(
                    to=customer.email,
                    template=EmailTemplate.TRIAL_ENDING,
                    values={"customer_name": customer.name, "trial_end": ends},
                    dedup_key=key,
                    customer_id=customer.id,
                    related_id=sub.id,
                ),
            )
    return warned
