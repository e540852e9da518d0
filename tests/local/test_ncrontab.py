"""NCRONTAB schedules: the syntax the timer trigger accepts, and next occurrences, by example and
by property (every next occurrence is later, matches, and skips none)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from shared.domain.ncrontab import Schedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("expression", "now", "expected"), [
    ("0 */5 * * * *", "2024-03-01T12:03:07", "2024-03-01T12:05:00"),
    ("0 */5 * * * *", "2024-03-01T12:05:00", "2024-03-01T12:10:00"),  # strictly after
    ("0 */5 * * * *", "2024-03-01T12:04:59.900", "2024-03-01T12:05:00"),
    ("*/1 * * * * *", "2024-03-01T12:00:00.5", "2024-03-01T12:00:01"),
    ("0 0 7 * * *", "2024-12-31T08:00:00", "2025-01-01T07:00:00"),
    ("0 5 * * * *", "2024-03-01T23:59:00", "2024-03-02T00:05:00"),
    ("0 30 9 * * 1-5", "2024-03-01T10:00:00", "2024-03-04T09:30:00"),  # Friday after 9:30 -> Monday
    ("0 30 9 * * Mon-Fri", "2024-03-01T10:00:00", "2024-03-04T09:30:00"),
    ("0 0 0 29 2 *", "2024-03-01T00:00:00", "2028-02-29T00:00:00"),
    ("0 0 12 * Jan Sun", "2024-02-01T00:00:00", "2025-01-05T12:00:00"),
    ("0 0 12 * * 7", "2024-03-01T00:00:00", "2024-03-03T12:00:00"),  # 7 is Sunday too
    ("0 0 12 13 * 5", "2024-01-01T00:00:00", "2024-09-13T12:00:00"),  # a Friday 13th: both must hold
    ("15,45 10-20/5 * * * *", "2024-03-01T12:10:45", "2024-03-01T12:15:15"),
    ("0 5/20 * * * *", "2024-03-01T12:46:00", "2024-03-01T13:05:00"),  # 5/20: 5, 25, 45
    ("30 9 * * *", "2024-03-01T09:30:00", "2024-03-02T09:30:00"),  # five fields: second 0
    ("0 0 0 31 * *", "2024-04-01T00:00:00", "2024-05-31T00:00:00"),  # April has no 31st
])
def test_next_occurrence(expression: str, now: str, expected: str) -> None:
    assert Schedule.parse(expression).next_after(at(now)) == at(expected)


def test_answers_in_utc_for_any_aware_time() -> None:
    paris = timezone(timedelta(hours=1))
    found = Schedule.parse("0 0 7 * * *").next_after(datetime(2024, 3, 1, 7, 30, tzinfo=paris))  # 6:30 UTC
    assert found == at("2024-03-01T07:00:00") and found.tzinfo == UTC


def test_names_ignore_case_and_lists_combine_with_ranges() -> None:
    schedule = Schedule.parse("0 0 0 1 jan,MAR-may,Dec SUN,wed-Thu")
    assert schedule.months == {1, 3, 4, 5, 12}
    assert schedule.days_of_week == {0, 3, 4}


@pytest.mark.parametrize("expression", [
    "", "* * * *", "* * * * * * *",  # field count
    "60 * * * * *", "* 60 * * * *", "* * 24 * * *", "* * * 0 * *", "* * * 32 * *", "* * * * 13 *",
    "* * * * * 8",  # out of range
    "*/0 * * * * *", "5-1 * * * * *", "a * * * * *", "1- * * * * *", "*/x * * * * *", "+1 * * * * *",
    "* * * * * Mon/", "* * * * Mon *", "* * * * * Jan",  # names only where they belong
    "0 0 0 30 2 *", "0 0 0 31 4,6 *",  # days that never exist
])
def test_invalid_schedules_are_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        Schedule.parse(expression)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        Schedule.parse("* * * * * *").next_after(datetime(2024, 1, 1))


def field(low: int, high: int) -> st.SearchStrategy[str]:
    """One NCRONTAB field within [low, high]: a list of values, ranges and steps."""
    value = st.integers(low, high)
    step = st.integers(1, high - low + 1)
    span = st.tuples(value, value).map(sorted)
    item = st.one_of(
        st.just("*"), value.map(str), step.map(lambda n: f"*/{n}"),
        span.map(lambda s: f"{s[0]}-{s[1]}"),
        st.tuples(span, step).map(lambda t: f"{t[0][0]}-{t[0][1]}/{t[1]}"))
    return st.lists(item, min_size=1, max_size=3).map(",".join)


def upper(low: int, high: int) -> st.SearchStrategy[str]:
    """Mostly `*` for the coarse fields, so that most schedules run often enough to check densely."""
    return st.one_of(st.just("*"), st.just("*"), field(low, high))


schedules = st.tuples(field(0, 59), field(0, 59), upper(0, 23), upper(1, 31), upper(1, 12), upper(0, 7)).map(
    " ".join)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def parsed(expression: str) -> Schedule:
    try:
        return Schedule.parse(expression)
    except ValueError:  # e.g. "31" with only short months: refused, rightly
        reject()


@settings(max_examples=150, deadline=None)
@given(expression=schedules, now=moments)
def test_next_is_later_and_matches(expression: str, now: datetime) -> None:
    schedule = parsed(expression)
    found = schedule.next_after(now)
    assert found > now
    assert schedule.matches(found)
    assert found.microsecond == 0 and found.tzinfo == UTC


@settings(max_examples=100, deadline=None)
@given(expression=schedules, now=moments, fraction=st.floats(0, 1, exclude_max=True))
def test_no_occurrence_is_skipped(expression: str, now: datetime, fraction: float) -> None:
    """No second between now and the next occurrence matches: checked second by second for the
    first hour, and from any point before it the next occurrence is the same one."""
    schedule = parsed(expression)
    found = schedule.next_after(now)
    second = now.replace(microsecond=0) + timedelta(seconds=1)
    while second < min(found, now + timedelta(hours=1)):
        assert not schedule.matches(second), second
        second += timedelta(seconds=1)
    between = min(now + (found - now) * fraction, found - timedelta(microseconds=1))  # rounding
    assert schedule.next_after(between) == found


@settings(max_examples=50, deadline=None)
@given(expression=schedules, now=moments)
def test_occurrences_follow_one_another(expression: str, now: datetime) -> None:
    schedule = parsed(expression)
    first = schedule.next_after(now)
    second = schedule.next_after(first)
    assert first < second and schedule.matches(second)
    assert schedule.next_after(second - timedelta(microseconds=1)) == second
