"""Sending one email over SMTP (stdlib smtplib, in a thread so the event loop keeps running).

SMTP_URL: `smtp://host:port` (plain), `smtp+starttls://…` (upgraded with STARTTLS) or
`smtps://…` (TLS from the start); `user:password@` before the host to log in."""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

from api.errors import Invalid

SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise Invalid(f"SMTP_URL must look like smtp://host:port ({', '.join(SCHEMES)})", field="SMTP_URL")
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port or SCHEMES[parts.scheme],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str


class SmtpSender:
    def __init__(self, url: str, sender: str) -> None:
        self.target = SmtpTarget.parse(url)
        self.sender = sender

    def _message(self, mail: Mail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Message-ID"] = make_msgid(domain="ledgerline")
        message.set_content(mail.body)
        return message

    def _send_blocking(self, mail: Mail) -> None:
        t = self.target
        client_type = smtplib.SMTP_SSL if t.scheme == "smtps" else smtplib.SMTP
        with client_type(t.host, t.port, timeout=TIMEOUT_SECONDS) as client:
            if t.scheme == "smtp+starttls":
                client.starttls()
            if t.username:
                client.login(t.username, t.password or "")
            client.send_message(self._message(mail))

    async def send(self, mail: Mail) -> None:
        """Raises OSError / smtplib.SMTPException when the server cannot be reached or refuses."""
        await asyncio.to_thread(self._send_blocking, mail)
