"""NCRONTAB schedules as the timer trigger reads them, in UTC.

Six fields, `{second} {minute} {hour} {day} {month} {day-of-week}`; five fields mean second 0.
Each field is a comma list of `*`, `n`, `a-b`, `*/n`, `a-b/n` or `a/n` (from a to the field's end).
Day of week runs 0-6 from Sunday, 7 is Sunday too; months and days may be named (Jan, mon).
As in NCrontab (and unlike Vixie cron), a day must match both the day and the day-of-week fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
DAYS_OF_WEEK = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# The longest days a month can have (February in a leap year): a schedule naming no such day never runs.
LONGEST_MONTHS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# The Gregorian calendar repeats every 400 years, so any occurrence lies within one cycle.
DAYS_IN_400_YEARS = 146_097


@dataclass(frozen=True)
class Schedule:
    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        fields = expression.split()
        if len(fields) == 5:
            fields.insert(0, "0")
        if len(fields) != 6:
            raise ValueError(f"{expression!r}: an NCRONTAB schedule has 6 fields (or 5, without seconds)")
        second, minute, hour, day, month, day_of_week = fields
        schedule = cls(
            expression,
            seconds=tuple(sorted(_field(second, 0, 59))),
            minutes=tuple(sorted(_field(minute, 0, 59))),
            hours=tuple(sorted(_field(hour, 0, 23))),
            days=frozenset(_field(day, 1, 31)),
            months=frozenset(_field(month, 1, 12, MONTHS)),
            days_of_week=frozenset(value % 7 for value in _field(day_of_week, 0, 7, DAYS_OF_WEEK)))
        if not any(day <= LONGEST_MONTHS[month - 1] for month in schedule.months for day in schedule.days):
            raise ValueError(f"{expression!r} names no day that exists: it would never run")
        return schedule

    def matches(self, moment: datetime) -> bool:
        moment = _utc(moment)
        return (moment.second in self.seconds and moment.minute in self.minutes and moment.hour in self.hours
                and self._day_matches(moment.date()))

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (an aware datetime), in UTC."""
        start = _utc(moment).replace(microsecond=0) + timedelta(seconds=1)
        day, earliest = start.date(), start.time()
        for _ in range(DAYS_IN_400_YEARS + 1):
            if self._day_matches(day):
                found = self._first_time_from(earliest)
                if found is not None:
                    return datetime.combine(day, found, UTC)
            day, earliest = day + timedelta(days=1), time.min
        raise AssertionError(f"{self.expression!r} has no occurrence in 400 years; parse() should refuse it")

    def _day_matches(self, day: date) -> bool:
        return (day.day in self.days and day.month in self.months
                and day.isoweekday() % 7 in self.days_of_week)

    def _first_time_from(self, earliest: time) -> time | None:
        """The first scheduled time of day at or after `earliest`, if any is left that day."""
        floor = (earliest.hour, earliest.minute, earliest.second)
        for hour in self.hours:
            if hour < floor[0]:
                continue
            for minute in self.minutes:
                if (hour, minute) < floor[:2]:
                    continue
                for second in self.seconds:
                    if (hour, minute, second) >= floor:
                        return time(hour, minute, second)
        return None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("schedules run in UTC: give an aware datetime")
    return moment.astimezone(UTC)


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        values.update(_item(item, low, high, names or {}))
    return values


def _item(item: str, low: int, high: int, names: dict[str, int]) -> range:
    span, has_step, step_text = item.partition("/")
    step = _number(step_text, {}) if has_step else 1
    if step < 1:
        raise ValueError(f"{item!r}: a step must be at least 1")
    if span == "*":
        start, end = low, high
    elif "-" in span:
        first, _, last = span.partition("-")
        start, end = _number(first, names), _number(last, names)
    else:
        start = _number(span, names)
        end = high if has_step else start
    if not low <= start <= end <= high:
        raise ValueError(f"{item!r}: values must run upwards within {low}-{high}")
    return range(start, end + 1, step)


def _number(text: str, names: dict[str, int]) -> int:
    if text.isascii() and text.isdigit():
        return int(text)
    if text.lower() in names:
        return names[text.lower()]
    raise ValueError(f"{text!r} is not a number{' or a name' if names else ''}")
