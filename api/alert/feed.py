"""The live feed of new alerts in an API process: one Redis subscription to the alerts channel,
fanned out to every local listener (one per `alertRaised` subscription).

Alerts published while the feed is disconnected from Redis are not replayed (it reconnects with
backoff); they stay in `alerts`. A listener that falls more than `QUEUE_LIMIT` alerts behind loses
the newest ones, which also stay in `alerts`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from api.alert.broadcast import CHANNEL, decode_alert
from api.alert.models import Alert

log = logging.getLogger("ledgerline.alerts")

QUEUE_LIMIT = 1000
SUBSCRIBE_WAIT_SECONDS = 5.0  # a new listener waits this long at most for the feed to be subscribed
HEALTH_CHECK_SECONDS = 15  # an idle subscription pings Redis this often (a dead link is noticed)
MIN_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


class AlertFeed:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self._listeners: set[asyncio.Queue[Alert]] = set()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @property
    def listening(self) -> int:
        """Listeners that receive what is published from now on (none while not subscribed)."""
        return len(self._listeners) if self._subscribed.is_set() else 0

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[Alert]]:
        """A queue receiving every alert published from now on (while the feed is connected)."""
        queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._listeners.add(queue)
        try:
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._run(), name="alert-feed")
            with contextlib.suppress(TimeoutError):  # Redis unreachable: alerts arrive once it is back
                await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_WAIT_SECONDS)
            yield queue
        finally:
            self._listeners.discard(queue)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._subscribed.clear()

    async def _run(self) -> None:
        delay = MIN_BACKOFF_SECONDS
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                # back off from the first retry after a working link, longer while Redis stays away
                delay = MIN_BACKOFF_SECONDS if self._subscribed.is_set() else min(delay * 2, MAX_BACKOFF_SECONDS)
                self._subscribed.clear()
                log.warning("alert feed lost Redis; reconnecting in %.1f s", delay, exc_info=True)
                await asyncio.sleep(delay)

    async def _follow(self) -> None:
        redis = Redis.from_url(
            self.redis_url, socket_connect_timeout=2, socket_keepalive=True, health_check_interval=HEALTH_CHECK_SECONDS
        )
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(CHANNEL)
                self._subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=HEALTH_CHECK_SECONDS)
                    if message is not None and message["type"] == "message":
                        self._dispatch(message["data"])
        finally:
            await redis.aclose()

    def _dispatch(self, raw: bytes) -> None:
        try:
            alert = decode_alert(raw)
        except Exception:  # a message this version cannot read must not stop the feed
            log.warning("unreadable alert message on %s", CHANNEL, exc_info=True)
            return
        for queue in self._listeners:
            try:
                queue.put_nowait(alert)
            except asyncio.QueueFull:
                log.warning("an alertRaised subscriber is %d alerts behind; dropped alert %s", QUEUE_LIMIT, alert.id)
