"""Staff roles and integration scopes. The permission matrix (what each may read and do)
builds on these names."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    OWNER = "owner"
    OPERATIONS = "operations"
    FINANCE = "finance"
    SUPPORT = "support"
    ANALYST = "analyst"

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls(value.strip().lower())
        except ValueError:
            allowed = ", ".join(r.value for r in cls)
            raise ValueError(f"unknown role {value!r} (one of: {allowed})") from None


class Scope(enum.StrEnum):
    USAGE_WRITE = "usage:write"
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    SUBSCRIPTIONS_WRITE = "subscriptions:write"
    INVOICES_READ = "invoices:read"
