"""Deadlines in working days on Vietnam's holiday calendar (Decree 68 Art. 19.2b, letter 293).

Art. 19.2b gives the Provider **1 working day** to revoke; letter 293/BCY-CTSBMTT gives
**12 hours** for centralised signing.  Interpretation used here, once:

* A working day is a Monday–Friday in Vietnam (UTC+7, no daylight saving) that is not a
  public holiday of the `holidays` package's VN calendar (Tết, Hùng Kings, 30/4, 1/5, 2/9,
  substituted days…) nor a day the deployment declares (`extra_holidays`: bridge days the
  government announces each year).
* "N working days" elapse when N × 24 hours have passed counting only time that falls on
  working days.  Received Monday 10:00 → due Tuesday 10:00; received Friday 10:00 → due
  the next working Monday 10:00; received Saturday → due at the end of the next working day.
* "N hours" are plain clock hours: centralised signing runs around the clock.

Time comes from the injected clock only; these functions take the instant as a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache

import holidays

from .errors import InvalidInput

#: Vietnam's civil time: UTC+7 all year
VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")


@lru_cache(maxsize=64)
def _public_holidays(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year).keys())


@dataclass(frozen=True)
class WorkingCalendar:
    country: str = "VN"
    extra_holidays: frozenset[date] = field(default_factory=frozenset)
    zone: timezone = VIETNAM_TIME

    @classmethod
    def with_extra(cls, extra: Iterable[str | date], country: str = "VN") -> WorkingCalendar:
        days = frozenset(d if isinstance(d, date) else date.fromisoformat(d) for d in extra)
        return cls(country=country, extra_holidays=days)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in _public_holidays(self.country, day.year) and day not in self.extra_holidays

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The instant `days` working days (of 24 h each) after `start`; aware UTC in and out."""
        if days < 0:
            raise ValueError("days must not be negative")
        local = start.astimezone(self.zone)
        remaining = timedelta(days=days)
        day = local.date()
        cursor = local
        while True:
            if self.is_working_day(day):
                day_end = datetime.combine(day + timedelta(days=1), time(0), self.zone)
                available = day_end - cursor
                if remaining <= available:
                    return (cursor + remaining).astimezone(UTC)
                remaining -= available
            day += timedelta(days=1)
            cursor = datetime.combine(day, time(0), self.zone)


@dataclass(frozen=True)
class DeadlineRule:
    """'1 working day' (Art. 19.2b) or '12 hours' (letter 293); parsed once from configuration."""

    amount: int
    unit: str  # "working_days" | "hours"

    _PATTERN = re.compile(r"^\s*(\d+)\s*(working\s+days?|hours?)\s*$", re.IGNORECASE)

    @classmethod
    def parse(cls, text: str) -> DeadlineRule:
        match = cls._PATTERN.match(text)
        if not match or int(match.group(1)) <= 0:
            raise InvalidInput(f"deadline {text!r} must look like '1 working day' or '12 hours'")
        unit = "hours" if match.group(2).lower().startswith("hour") else "working_days"
        return cls(int(match.group(1)), unit)

    def due(self, received: datetime, calendar: WorkingCalendar) -> datetime:
        if self.unit == "hours":
            return received.astimezone(UTC) + timedelta(hours=self.amount)
        return calendar.add_working_days(received, self.amount)

    def __str__(self) -> str:
        if self.unit == "hours":
            return f"{self.amount} hour{'s' if self.amount != 1 else ''}"
        return f"{self.amount} working day{'s' if self.amount != 1 else ''}"
