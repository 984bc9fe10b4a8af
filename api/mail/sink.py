"""A local SMTP server that accepts every message, keeps it in memory and logs who it was for:
what `ledgerline run` points SMTP_URL at when none is configured (the demo works offline), and
what the tests send to."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from api.embedded import free_port

log = logging.getLogger("ledgerline.mail.sink")


@dataclass(frozen=True, slots=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    message: Message


class _Collector:
    def __init__(self, on_message: Callable[[Received], None] | None) -> None:
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.on_message = on_message

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = message_from_bytes(raw, policy=default_policy)
        part: Any = message.get_body(("plain",)) if hasattr(message, "get_body") else message
        received = Received(
            sender=str(envelope.mail_from or ""),
            recipients=tuple(str(r) for r in envelope.rcpt_tos),
            subject=str(message.get("Subject", "")),
            body=part.get_content() if part is not None else "",
            message=message,
        )
        with self.lock:
            self.messages.append(received)
        if self.on_message is not None:
            self.on_message(received)
        return "250 Message accepted for delivery"


class SmtpSink:
    """`with SmtpSink() as sink:` → an SMTP server on 127.0.0.1 (`sink.url`), `sink.messages`."""

    def __init__(self, port: int = 0, on_message: Callable[[Received], None] | None = None) -> None:
        self.port = port or free_port()
        self._collector = _Collector(on_message)
        self._controller = Controller(self._collector, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[Received]:
        with self._collector.lock:
            return list(self._collector.messages)

    def clear(self) -> None:
        with self._collector.lock:
            self._collector.messages.clear()

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def log_message(received: Received) -> None:
    log.info("email to %s: %s", ", ".join(received.recipients), received.subject)
