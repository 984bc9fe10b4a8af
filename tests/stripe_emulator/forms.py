"""Decoding of Stripe's form / query-string bracket notation into nested values.

``items[0][price]=p&expand[]=a`` becomes ``{"items": {"0": {"price": "p"}}, "expand": {"0": "a"}}``.
Every container is a dict at this stage; the schema (see ``schema.py``) turns dicts with numeric
keys into lists where the SDK's typed params declare a list.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from .errors import invalid

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")

Nested = dict[str, Any]


def split_key(key: str) -> list[str]:
    match = _KEY.match(key)
    if match is None:
        raise invalid(f"Invalid parameter name: {key}", param=key)
    head, rest = match.groups()
    return [head, *_SEGMENT.findall(rest)]


def decode_pairs(pairs: list[tuple[str, str]]) -> Nested:
    root: Nested = {}
    for key, value in pairs:
        segments = split_key(key)
        current = root
        for index, segment in enumerate(segments):
            last = index == len(segments) - 1
            if segment == "":
                # `a[]` appends: give it the next free numeric index.
                segment = str(len(current))
            if last:
                if isinstance(current.get(segment), dict):
                    raise invalid(f"Invalid mix of scalar and hash for {key}", param=key)
                current[segment] = value
            else:
                child = current.get(segment)
                if child is None:
                    child = {}
                    current[segment] = child
                elif not isinstance(child, dict):
                    raise invalid(f"Invalid mix of scalar and hash for {key}", param=key)
                current = child
    return root


def decode_form(body: bytes | str) -> tuple[Nested, list[tuple[str, str]]]:
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    pairs = parse_qsl(text, keep_blank_values=True)
    return decode_pairs(pairs), pairs
