"""Run the emulator with uvicorn in a background thread (for tests and local development)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette

from .app import advance_clock, create_emulator_app
from .state import EmulatorState


@dataclass
class EmulatorHandle:
    """A running emulator: where it listens, and direct access to its state for tests."""

    url: str
    port: int
    app: Starlette
    state: EmulatorState
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def advance_clock(self, seconds: int) -> int:
        """Move the clock forward (renewals, trial ends, cancellations happen); the new now."""
        return advance_clock(self.state, seconds)

    def now(self) -> int:
        return self.state.now()

    def requests(self, *, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """The API requests received so far (replays included, flagged ``idempotent_replayed``)."""
        with self.state.lock:
            entries = list(self.state.request_log)
        if method:
            entries = [e for e in entries if e["method"] == method.upper()]
        if path:
            entries = [e for e in entries if e["path"].startswith(path)]
        return entries

    def clear_requests(self) -> None:
        with self.state.lock:
            self.state.request_log.clear()

    def configure_webhooks(self, url: str | None, secret: str | None = None) -> None:
        self.state.webhooks.configure(url, secret)

    def flush_webhooks(self, timeout: float = 30.0) -> bool:
        """Wait until every queued webhook delivery finished; False on timeout."""
        return self.state.webhooks.flush(timeout)

    def reset(self) -> None:
        """Forget every object, event, logged request and idempotency key."""
        with self.state.lock:
            self.state.reset()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.state.webhooks.stop()


@contextmanager
def run_emulator(
    port: int = 0,
    webhook_url: str | None = None,
    webhook_secret: str = "whsec_emulator",
    *,
    host: str = "127.0.0.1",
) -> Iterator[EmulatorHandle]:
    """Serve the emulator on ``host:port`` (port 0 picks a free one) for the ``with`` block."""
    app = create_emulator_app(webhook_url=webhook_url, webhook_secret=webhook_secret)
    state: EmulatorState = app.state.emulator
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    actual_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="stripe-emulator", daemon=True)
    thread.start()
    url = f"http://{host}:{actual_port}"
    state.base_url = url
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the Stripe emulator did not start")
        time.sleep(0.01)
    with urllib.request.urlopen(f"{url}/_emulator/health", timeout=5) as response:
        if response.status != 200:
            raise RuntimeError("the Stripe emulator is not healthy")
    handle = EmulatorHandle(url, actual_port, app, state, server, thread)
    try:
        yield handle
    finally:
        handle.stop()
        sock.close()
