"""Export filter parameters (HTTP query string or `ledgerline export NAME=VALUE`), typed.

Unknown or repeated parameters are refused (a typo must not silently export everything), and
every error names the parameter. Lists are comma-separated (`status=ACTIVE,PAST_DUE`); enum
values are the GraphQL enum names, in any case; ids are global ids or bare UUIDs; times are ISO
8601 dates or date-times (UTC when no offset is given); `from` is inclusive, `to` exclusive.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from api.common.daterange import DateRange, DateRangePreset, preset_range
from api.common.globalid import decode_global_id
from api.errors import Invalid

E = TypeVar("E", bound=enum.Enum)

_BOOLEANS = {"true": True, "false": False}


def parse_time(name: str, value: str) -> datetime:
    candidates = [value]
    if " " in value:
        # an unencoded `+02:00` offset arrives as ` 02:00`
        head, _, tail = value.rpartition(" ")
        candidates.append(f"{head}+{tail}")
    for candidate in candidates:
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise Invalid(f"`{name}` is not an ISO 8601 date or date-time: {value[:64]!r}", field=name)


class Params:
    def __init__(self, pairs: Iterable[tuple[str, str]], allowed: Sequence[str]) -> None:
        self._values: dict[str, str] = {}
        for name, value in pairs:
            if name not in allowed:
                raise Invalid(
                    f"unknown query parameter `{name}`; expected one of {', '.join(sorted(allowed))}", field=name
                )
            if name in self._values:
                raise Invalid(f"`{name}` is given more than once", field=name)
            self._values[name] = value

    def text(self, name: str) -> str | None:
        return self._values.get(name) or None

    def time(self, name: str) -> datetime | None:
        value = self.text(name)
        return parse_time(name, value) if value else None

    def date_range(self, start: str = "from", end: str = "to", preset: str | None = None) -> DateRange:
        """[start, end) from two time parameters, or a preset (`LAST_30_DAYS` ...) instead of them."""
        lower, upper = self.time(start), self.time(end)
        chosen = self.choice(preset, DateRangePreset) if preset else None
        if chosen is not None:
            if lower is not None or upper is not None:
                raise Invalid(f"give either `{preset}` or `{start}`/`{end}`, not both", field=preset)
            return preset_range(chosen)
        if lower is not None and upper is not None and lower > upper:
            raise Invalid(f"`{start}` ({lower.isoformat()}) is after `{end}` ({upper.isoformat()})", field=start)
        return DateRange(start=lower, end=upper)

    def choice(self, name: str, kind: type[E]) -> E | None:
        value = self.text(name)
        return _member(name, kind, value) if value else None

    def choices(self, name: str, kind: type[E]) -> tuple[E, ...]:
        value = self.text(name)
        parts = [part.strip() for part in value.split(",")] if value else []
        return tuple(dict.fromkeys(_member(name, kind, part) for part in parts if part))

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        if value.lower() not in _BOOLEANS:
            raise Invalid(f"`{name}` must be true or false, got {value[:64]!r}", field=name)
        return _BOOLEANS[value.lower()]

    def node_id(self, name: str, type_name: str) -> uuid.UUID | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
        found = decode_global_id(value, type_name)
        if found is None:
            raise Invalid(f"`{name}` must be the id of a {type_name} (global id or UUID)", field=name)
        return found


def _member(name: str, kind: type[E], value: str) -> E:
    for member in kind:
        if member.name == value.upper():
            return member
    names = ", ".join(member.name for member in kind)
    raise Invalid(f"`{name}` must be one of {names} (comma-separated), got {value[:64]!r}", field=name)
