"""Raising, listing and acknowledging alerts. Who sees an alert follows what it is about: a quota alert is
usage, a failed payment is an invoice, a webhook failure is the webhook log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.alert.broadcast import note_raised
from api.alert.models import Alert, AlertKind, AlertSeverity, AlertStatus
from api.audit.record import Actor, record_audit
from api.auth.permissions import Capability
from api.common.daterange import DateRange
from api.common.pagination import Page, PageArgs, SortKey
from api.common.queries import count_where, fetch_page
from api.db import utcnow
from api.errors import NotFound

SORT_KEY = SortKey("alert:CREATED_AT_DESC", Alert.created_at, Alert.id, True)

# the read capability an alert of each kind needs: seeing the alert must not reveal more than
# the data it is about
KIND_CAPABILITY: dict[AlertKind, Capability] = {
    AlertKind.PAYMENT_FAILED: Capability.INVOICE_READ,
    AlertKind.TRIAL_ENDING: Capability.SUBSCRIPTION_READ,
    AlertKind.QUOTA_THRESHOLD: Capability.USAGE_READ,
    AlertKind.CHURN_RISK: Capability.CUSTOMER_READ,
    AlertKind.WEBHOOK_FAILURE: Capability.WEBHOOK_LOG_READ,
}
assert set(KIND_CAPABILITY) == set(AlertKind), "every alert kind needs a read capability"


def visible_kinds(capabilities: frozenset[Capability]) -> frozenset[AlertKind]:
    return frozenset(kind for kind, capability in KIND_CAPABILITY.items() if capability in capabilities)


@dataclass(frozen=True, slots=True)
class NewAlert:
    kind: AlertKind
    severity: AlertSeverity
    message: str
    dedup_key: str
    customer_id: uuid.UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)


async def raise_alert(session: AsyncSession, alert: NewAlert) -> Alert | None:
    """Stores the alert unless one with the same `dedup_key` exists; returns it when new. Safe
    under concurrency: the database decides (unique key, ON CONFLICT DO NOTHING)."""
    stmt = (
        insert(Alert)
        .values(
            id=uuid.uuid4(),
            kind=alert.kind,
            severity=alert.severity,
            status=AlertStatus.OPEN,
            customer_id=alert.customer_id,
            message=alert.message,
            details=alert.details,
            dedup_key=alert.dedup_key,
        )
        .on_conflict_do_nothing(index_elements=[Alert.dedup_key])
        .returning(Alert.id)
    )
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    if new_id is None:
        return None
    created = await session.get(Alert, new_id)
    assert created is not None
    note_raised(session, created)  # published to live subscribers once the transaction commits
    return created


@dataclass(frozen=True, slots=True)
class AlertFilter:
    kinds: tuple[AlertKind, ...] = ()
    statuses: tuple[AlertStatus, ...] = ()
    customer_id: uuid.UUID | None = None
    created: DateRange = field(default_factory=DateRange)


def alert_conditions(flt: AlertFilter, visible: frozenset[AlertKind]) -> list[ColumnElement[bool]]:
    kinds = [k for k in (flt.kinds or tuple(AlertKind)) if k in visible]
    conditions = [flt.created.clause(Alert.created_at), Alert.kind.in_(kinds) if kinds else false()]
    if flt.statuses:
        conditions.append(Alert.status.in_(flt.statuses))
    if flt.customer_id is not None:
        conditions.append(Alert.customer_id == flt.customer_id)
    return conditions


async def list_alerts(
    session: AsyncSession, flt: AlertFilter, visible: frozenset[AlertKind], page: PageArgs
) -> Page[Alert]:
    return await fetch_page(session, select(Alert).where(*alert_conditions(flt, visible)), SORT_KEY, page)


async def find_visible_alert(session: AsyncSession, alert_id: uuid.UUID, visible: frozenset[AlertKind]) -> Alert | None:
    """One alert, by the same rule as the list: None when it does not exist or is of a kind outside
    `visible` (the two look alike, so the ids of hidden alerts cannot be probed)."""
    stmt = select(Alert).where(Alert.id == alert_id, *alert_conditions(AlertFilter(), visible))
    return (await session.execute(stmt)).scalar_one_or_none()


async def count_alerts(session: AsyncSession, flt: AlertFilter, visible: frozenset[AlertKind]) -> int:
    return await count_where(session, Alert, alert_conditions(flt, visible))


class HiddenAlert(NotFound):
    """An alert of a kind the caller may not read: answered exactly as a missing one, so its id
    cannot be probed; `capability` (what reading it needs) is for the security event."""

    def __init__(self, alert_id: uuid.UUID, kind: AlertKind) -> None:
        self.capability = KIND_CAPABILITY[kind]
        super().__init__(_no_such_alert(alert_id), field="id")


def _no_such_alert(alert_id: uuid.UUID) -> str:
    return f"alert {alert_id} does not exist"


def _snapshot(alert: Alert) -> dict[str, object]:
    return {
        "status": alert.status.value,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "acknowledged_by": alert.acknowledged_by,
    }


async def acknowledge_alert(
    session: AsyncSession, actor: Actor, alert_id: uuid.UUID, capabilities: frozenset[Capability]
) -> Alert:
    """Marks the alert ACKNOWLEDGED by `actor`. Only an alert the caller may see (its kind's read
    capability): HiddenAlert otherwise, which reads as a missing alert. Acknowledging again
    changes nothing (who acknowledged first stays) but is audited like any call."""
    alert = await session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound(_no_such_alert(alert_id), field="id")
    if KIND_CAPABILITY[alert.kind] not in capabilities:
        raise HiddenAlert(alert_id, alert.kind)
    before = _snapshot(alert)
    if alert.status is not AlertStatus.ACKNOWLEDGED:
        alert.status = AlertStatus.ACKNOWLEDGED
        alert.acknowledged_at = utcnow()
        alert.acknowledged_by = actor.subject
        await session.flush()
    await record_audit(
        session, actor, "acknowledgeAlert", "Alert", str(alert.id), before=before, after=_snapshot(alert)
    )
    return alert
