"""In-memory state of the emulator: objects, the clock, the request log, idempotency records."""

from __future__ import annotations

import copy
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .webhooks import WebhookDispatcher

StoredObject = dict[str, Any]


class Clock:
    """Real time plus an offset that only grows; ``pinned`` fixes "now" while a transition runs."""

    def __init__(self, frozen_at: int | None = None) -> None:
        self._offset = 0
        self._frozen_at = frozen_at
        self._pinned: int | None = None

    def now(self) -> int:
        if self._pinned is not None:
            return self._pinned
        if self._frozen_at is not None:
            return self._frozen_at
        return int(time.time()) + self._offset

    @property
    def offset(self) -> int:
        return self._offset

    def move_to(self, timestamp: int) -> None:
        """Move "now" forward to ``timestamp`` (never backwards)."""
        if self._frozen_at is not None:
            self._frozen_at = max(self._frozen_at, timestamp)
            return
        self._offset = max(self._offset, timestamp - int(time.time()))

    @contextmanager
    def pinned(self, timestamp: int) -> Iterator[None]:
        previous = self._pinned
        self._pinned = timestamp
        try:
            yield
        finally:
            self._pinned = previous


@dataclass
class IdempotencyRecord:
    fingerprint: str
    status: int
    body: bytes
    method: str
    path: str
    created: int  # emulator clock; Stripe keeps keys for at least 24 hours


IDEMPOTENCY_TTL = 24 * 3600


class EmulatorState:
    """Everything the emulator knows. Guard every access with ``lock``."""

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        webhook_secret: str = "whsec_emulator",
        clock: Clock | None = None,
        dry_run: bool = False,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.objects: defaultdict[str, dict[str, StoredObject]] = defaultdict(dict)
        self.counters: defaultdict[str, int] = defaultdict(int)
        self.meter_events: list[dict[str, Any]] = []
        self.meter_identifiers: dict[str, int] = {}
        self.request_log: list[dict[str, Any]] = []
        self.idempotency: dict[str, IdempotencyRecord] = {}
        self.webhooks = WebhookDispatcher(webhook_url, webhook_secret)
        self.base_url = "http://127.0.0.1"
        # A dry-run state is a throwaway copy used for previews: no events, no payments.
        self.dry_run = dry_run
        self.current_request: dict[str, Any] | None = None
        # The card error of the last automatic collection, for `error_if_incomplete` callers.
        self.last_payment_error: Exception | None = None
        # Webhook payloads of the request in flight; sent once the request commits.
        self.outbox: list[tuple[str, str, str]] = []

    def now(self) -> int:
        return self.clock.now()

    def collection(self, kind: str) -> dict[str, StoredObject]:
        return self.objects[kind]

    def next_counter(self, name: str) -> int:
        self.counters[name] += 1
        return self.counters[name]

    def fork(self) -> EmulatorState:
        """A deep copy frozen at the current time, for computing previews."""
        fork = EmulatorState(clock=Clock(frozen_at=self.now()), dry_run=True)
        fork.objects = copy.deepcopy(self.objects)
        fork.counters = copy.deepcopy(self.counters)
        fork.meter_events = copy.deepcopy(self.meter_events)
        fork.meter_identifiers = dict(self.meter_identifiers)
        fork.base_url = self.base_url
        return fork

    def snapshot(self) -> tuple[dict[str, Any], int]:
        """A copy of everything a failing request must not leave changed (events excepted)."""
        data = {
            "objects": {k: copy.deepcopy(v) for k, v in self.objects.items() if k != "event"},
            "counters": dict(self.counters),
            "meter_events": list(self.meter_events),
            "meter_identifiers": dict(self.meter_identifiers),
        }
        return data, len(self.objects["event"])

    def rollback(self, snapshot: tuple[dict[str, Any], int]) -> None:
        data, event_count = snapshot
        events = self.objects["event"]
        kept_events = dict(list(events.items())[:event_count])
        self.objects.clear()
        self.objects.update(data["objects"])
        self.objects["event"] = kept_events
        self.counters.clear()
        self.counters.update(data["counters"])
        self.meter_events[:] = data["meter_events"]
        self.meter_identifiers.clear()
        self.meter_identifiers.update(data["meter_identifiers"])
        self.outbox.clear()

    def commit(self) -> None:
        outbox, self.outbox = self.outbox, []
        for event_id, event_type, payload in outbox:
            self.webhooks.enqueue(event_id, event_type, payload)

    def reset(self) -> None:
        self.objects.clear()
        self.counters.clear()
        self.meter_events.clear()
        self.meter_identifiers.clear()
        self.request_log.clear()
        self.idempotency.clear()
        self.outbox.clear()
