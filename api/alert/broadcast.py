"""New alerts go out on Redis pub/sub once their transaction has committed.

`raise_alert` notes each new alert on its session; when the session's outermost transaction
commits, the alerts noted in it are published (in the order they were raised) on `CHANNEL`, where
every API process's `AlertFeed` hands them to its `alertRaised` subscribers. An alert rolled back
(its savepoint or its whole transaction) is never published. Publishing is fire-and-forget: a lost
publish (Redis down, the process stopping) loses only the live notice, never the stored alert,
which `alerts` still lists.

Sessions publish only when their factory was given a publisher (`enable_publishing`): the
runtime's session factories are; a bare session (a script, a test's own factory) raises alerts
quietly."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from api.alert.models import Alert, AlertKind, AlertSeverity, AlertStatus

log = logging.getLogger("ledgerline.alerts")

CHANNEL = "ledgerline:alerts"
_PUBLISHER = "ledgerline.alert_publisher"  # session.info keys
_PENDING = "ledgerline.alerts_pending"


def encode_alert(alert: Alert) -> str:
    return json.dumps(
        {
            "id": str(alert.id),
            "kind": alert.kind.value,
            "severity": alert.severity.value,
            "status": alert.status.value,
            "customer_id": str(alert.customer_id) if alert.customer_id else None,
            "message": alert.message,
            "details": alert.details,
            "created_at": alert.created_at.isoformat(),
        }
    )


def decode_alert(raw: str | bytes) -> Alert:
    """A detached Alert as it was raised (OPEN: it is new), for the subscription to show."""
    data: dict[str, Any] = json.loads(raw)
    return Alert(
        id=uuid.UUID(data["id"]),
        kind=AlertKind(data["kind"]),
        severity=AlertSeverity(data["severity"]),
        status=AlertStatus(data["status"]),
        customer_id=uuid.UUID(data["customer_id"]) if data["customer_id"] else None,
        message=data["message"],
        details=data["details"],
        dedup_key="",  # not sent: it says nothing a subscriber needs
        created_at=datetime.fromisoformat(data["created_at"]),
        acknowledged_at=None,
        acknowledged_by=None,
    )


class AlertPublisher:
    """Publishes on CHANNEL. One lock keeps publications in the order their commits happened."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()  # strong references until each is done

    async def publish(self, messages: Sequence[str]) -> None:
        try:
            async with self._lock:
                pipe = self.redis.pipeline(transaction=False)
                for message in messages:
                    pipe.publish(CHANNEL, message)
                await pipe.execute()
        except Exception:  # the alerts are stored; only their live notice is lost
            log.warning("could not publish %d new alert(s)", len(messages), exc_info=True)

    def publish_soon(self, messages: Sequence[str]) -> None:
        task = asyncio.get_running_loop().create_task(self.publish(messages))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Waits for publications under way (before the Redis client closes)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def enable_publishing(session_factory: async_sessionmaker[AsyncSession], publisher: AlertPublisher) -> None:
    """Sessions of `session_factory` publish the alerts they raise once they commit."""
    info = dict(session_factory.kw.get("info") or {})
    info[_PUBLISHER] = publisher
    session_factory.configure(info=info)


def note_raised(session: AsyncSession, alert: Alert) -> None:
    """Remembers a new alert until its transaction ends, with the transaction it belongs to (the
    innermost savepoint, so a savepoint rolled back takes its alerts with it)."""
    sync = session.sync_session
    if _PUBLISHER not in sync.info:
        return
    owner = sync.get_nested_transaction() or sync.get_transaction()
    sync.info.setdefault(_PENDING, []).append((owner, encode_alert(alert)))


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _publish_committed(session: Session) -> None:
    # also called when a savepoint is released: only the outermost commit makes alerts final
    if session.in_nested_transaction() or _PENDING not in session.info:
        return
    pending = session.info.pop(_PENDING)
    session.info[_PUBLISHER].publish_soon([message for _, message in pending])


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    if _PENDING not in session.info:
        return
    # what the database undid: the nearest savepoint or the whole transaction
    boundary: SessionTransaction | None = previous
    while boundary is not None and not boundary.nested and boundary.parent is not None:
        boundary = boundary.parent
    if boundary is None or not boundary.nested:
        del session.info[_PENDING]
        return
    kept = [(owner, message) for owner, message in session.info[_PENDING] if not _within(owner, boundary)]
    session.info[_PENDING] = kept
