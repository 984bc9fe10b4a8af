"""The audit hash chain: each entry hashes its canonical content together with the previous hash.

Anyone who alters, inserts or removes a row in the middle breaks every later link, which
`ledgerline audit verify` and `auditChainStatus` report.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

# the fields that are hashed, in a fixed order (the id is not: it is assigned by the database)
HASHED_FIELDS = (
    "occurred_at",
    "actor_subject",
    "actor_role",
    "api_key_id",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "outcome",
    "request_id",
    "ip",
    "user_agent",
)


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):  # enums
        return value.value
    return value


def canonical_content(entry: Mapping[str, Any]) -> str:
    content = {name: _canonical_value(entry.get(name)) for name in HASHED_FIELDS}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical_content(entry)}".encode()).hexdigest()
