"""Date ranges used by every time-based list and analytics query: explicit bounds or a preset."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, true

from api.errors import Invalid


class DateRangePreset(enum.StrEnum):
    TODAY = "TODAY"
    LAST_7_DAYS = "LAST_7_DAYS"
    LAST_30_DAYS = "LAST_30_DAYS"
    LAST_90_DAYS = "LAST_90_DAYS"
    LAST_12_MONTHS = "LAST_12_MONTHS"
    MONTH_TO_DATE = "MONTH_TO_DATE"
    YEAR_TO_DATE = "YEAR_TO_DATE"


@dataclass(frozen=True, slots=True)
class DateRange:
    """A half-open range [start, end); either bound may be open."""

    start: datetime | None = None
    end: datetime | None = None

    def clause(self, column: Any) -> ColumnElement[bool]:
        parts: list[ColumnElement[bool]] = []
        if self.start is not None:
            parts.append(column >= self.start)
        if self.end is not None:
            parts.append(column < self.end)
        return and_(*parts) if parts else true()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def preset_range(preset: DateRangePreset, now: datetime | None = None) -> DateRange:
    now = now or datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = {
        DateRangePreset.TODAY: today,
        DateRangePreset.LAST_7_DAYS: today - timedelta(days=6),
        DateRangePreset.LAST_30_DAYS: today - timedelta(days=29),
        DateRangePreset.LAST_90_DAYS: today - timedelta(days=89),
        DateRangePreset.LAST_12_MONTHS: today.replace(year=today.year - 1) + timedelta(days=1)
        if not (today.month == 2 and today.day == 29)
        else today - timedelta(days=365),
        DateRangePreset.MONTH_TO_DATE: today.replace(day=1),
        DateRangePreset.YEAR_TO_DATE: today.replace(month=1, day=1),
    }
    return DateRange(start=starts[preset], end=today + timedelta(days=1))


def make_range(
    start: datetime | None,
    end: datetime | None,
    preset: DateRangePreset | None = None,
    *,
    field: str,
    now: datetime | None = None,
) -> DateRange:
    """Check and build a range; errors name the argument (`field.from`, `field.to`, `field.preset`)."""
    if preset is not None:
        if start is not None or end is not None:
            raise Invalid(f"`{field}`: give either `preset` or `from`/`to`, not both", field=f"{field}.preset")
        return preset_range(preset, now)
    start = _aware(start) if start is not None else None
    end = _aware(end) if end is not None else None
    if start is not None and end is not None and start > end:
        raise Invalid(
            f"`{field}.from` ({start.isoformat()}) is after `{field}.to` ({end.isoformat()})", field=f"{field}.from"
        )
    return DateRange(start=start, end=end)
