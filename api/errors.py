"""Domain errors. Each carries the GraphQL `extensions.code` it maps to and, when it is about
one argument, the field it names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class LedgerlineError(Exception):
    code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extensions

    @property
    def extensions(self) -> dict[str, Any]:
        ext: dict[str, Any] = {"code": self.code}
        if self.field is not None:
            ext["field"] = self.field
        ext.update(self.extra)
        return ext


class Unauthenticated(LedgerlineError):
    code = "UNAUTHENTICATED"


class Forbidden(LedgerlineError):
    code = "FORBIDDEN"

    def __init__(self, message: str, *, required_roles: Sequence[str] = (), **extensions: Any) -> None:
        super().__init__(message, requiredRoles=list(required_roles), **extensions)


class NotFound(LedgerlineError):
    code = "NOT_FOUND"


class Invalid(LedgerlineError):
    """Bad input from the client; `field` names the argument."""

    code = "BAD_USER_INPUT"


class Rejected(Invalid):
    """An expected refusal with its own code: a declined card (Stripe's `card_declined`), a reused
    idempotency key (`IDEMPOTENCY_KEY_REUSED`). Shown as a user error with that code."""

    def __init__(self, message: str, *, code: str, field: str | None = None, **extensions: Any) -> None:
        super().__init__(message, field=field, **extensions)
        self.reason = code

    @property
    def extensions(self) -> dict[str, Any]:
        return {**super().extensions, "code": self.reason}


class Conflict(LedgerlineError):
    code = "CONFLICT"


class RateLimited(LedgerlineError):
    code = "RATE_LIMITED"


class ProviderError(LedgerlineError):
    """Stripe (or another provider) failed or is unreachable; nothing was changed locally."""

    code = "STRIPE_ERROR"
