"""Signed webhook delivery from a background thread, with retries and a flush barrier."""

from __future__ import annotations

import hashlib
import hmac
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_DELAYS = (0.1, 0.3, 0.8)


def sign_payload(payload: str, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``payload``: ``t=<unix>,v1=<hex hmac>``."""
    signed = f"{timestamp}.{payload}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class Delivery:
    event_id: str
    event_type: str
    url: str
    attempts: int = 0
    status: str = "pending"  # pending | delivered | failed
    response_status: int | None = None
    error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "url": self.url,
            "attempts": self.attempts,
            "status": self.status,
            "response_status": self.response_status,
            "error": self.error,
            "history": list(self.history),
        }


class WebhookDispatcher:
    """Posts queued events to the configured endpoint from one daemon thread.

    The API handler only enqueues, so a slow or dead receiver never blocks an API response.
    The signature timestamp is real wall-clock time (not the emulator clock), because receivers
    check it against their own clock with a tolerance.
    """

    def __init__(self, url: str | None, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[tuple[Delivery, str] | None] = queue.Queue()
        self._pending = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None

    def configure(self, url: str | None, secret: str | None = None) -> None:
        self.url = url
        if secret is not None:
            self.secret = secret

    def enqueue(self, event_id: str, event_type: str, payload: str) -> bool:
        if not self.url:
            return False
        delivery = Delivery(event_id=event_id, event_type=event_type, url=self.url)
        with self._cond:
            self.deliveries.append(delivery)
            self._pending += 1
        self._ensure_thread()
        self._queue.put((delivery, payload))
        return True

    def _ensure_thread(self) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="stripe-emulator-webhooks", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        self._client = httpx.Client(timeout=5.0)
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                delivery, payload = item
                try:
                    self._deliver(delivery, payload)
                finally:
                    with self._cond:
                        self._pending -= 1
                        self._cond.notify_all()
        finally:
            self._client.close()

    def _deliver(self, delivery: Delivery, payload: str) -> None:
        assert self._client is not None
        for attempt in range(len(RETRY_DELAYS) + 1):
            delivery.attempts += 1
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": sign_payload(payload, self.secret, timestamp),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) emulator",
            }
            try:
                response = self._client.post(delivery.url, content=payload, headers=headers)
                delivery.response_status = response.status_code
                delivery.history.append({"status": response.status_code, "at": timestamp})
                if 200 <= response.status_code < 300:
                    delivery.status = "delivered"
                    delivery.error = None
                    return
                delivery.error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                delivery.error = f"{type(exc).__name__}: {exc}"
                delivery.history.append({"error": delivery.error, "at": timestamp})
            if attempt < len(RETRY_DELAYS):
                time.sleep(RETRY_DELAYS[attempt])
        delivery.status = "failed"

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until every queued delivery finished (delivered or gave up)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)
