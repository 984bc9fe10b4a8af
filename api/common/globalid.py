"""Global ids (`base64("Type:uuid")`) as the GraphQL schema hands them out, read back by code
outside the schema (the usage ingest accepts them as customer references)."""

from __future__ import annotations

import base64
import binascii
import uuid


def split_global_id(value: str) -> tuple[str, str] | None:
    """(type name, local id) of a global id, or None when `value` is not one."""
    try:
        type_name, _, local_id = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (type_name, local_id) if type_name and local_id else None


def decode_global_id(value: str, expected_type: str) -> uuid.UUID | None:
    """The UUID inside a global id of `expected_type`, or None when `value` is not one."""
    parts = split_global_id(value)
    if parts is None or parts[0] != expected_type:
        return None
    try:
        return uuid.UUID(parts[1])
    except ValueError:
        return None
