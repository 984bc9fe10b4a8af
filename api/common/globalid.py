"""Global ids (`base64("Type:uuid")`) as the GraphQL schema hands them out, read back by code
outside the schema (the usage ingest accepts them as customer references)."""

from __future__ import annotations

import base64
import binascii
import uuid


def decode_global_id(value: str, expected_type: str) -> uuid.UUID | None:
    """The UUID inside a global id of `expected_type`, or None when `value` is not one."""
    try:
        type_name, _, local_id = base64.b64decode(value, validate=True).decode().partition(":")
        return uuid.UUID(local_id) if type_name == expected_type else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
