"""Working-day deadlines on Vietnam's calendar (Art. 19.2b) and the 12-hour rule (letter 293)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lifecycle_api.deadlines import VIETNAM_TIME, DeadlineRule, WorkingCalendar
from lifecycle_api.errors import InvalidInput

VN = WorkingCalendar()
ONE_DAY = DeadlineRule.parse("1 working day")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=VIETNAM_TIME)


def test_deadlines_monday_to_tuesday() -> None:
    assert ONE_DAY.due(local(2026, 3, 2, 10), VN) == local(2026, 3, 3, 10)


def test_deadlines_friday_skips_weekend() -> None:
    assert ONE_DAY.due(local(2026, 3, 6, 10), VN) == local(2026, 3, 9, 10)


def test_deadlines_saturday_counts_from_monday() -> None:
    assert ONE_DAY.due(local(2026, 3, 7, 15), VN) == local(2026, 3, 10, 0)


def test_deadlines_tet_holidays_skipped() -> None:
    # Tết 2026: 16–20 February are public holidays; received Friday 13 February
    assert ONE_DAY.due(local(2026, 2, 13, 10), VN) == local(2026, 2, 23, 10)
    assert not VN.is_working_day(local(2026, 2, 17).date())


def test_deadlines_national_day() -> None:
    # 1 and 2 September 2026 (Tue, Wed) are holidays: Monday 31 Aug is a substituted day off too
    assert ONE_DAY.due(local(2026, 8, 28, 9), VN) == local(2026, 9, 3, 9)


def test_deadlines_declared_bridge_day() -> None:
    calendar = WorkingCalendar.with_extra(["2026-03-03"])
    assert ONE_DAY.due(local(2026, 3, 2, 10), calendar) == local(2026, 3, 4, 10)


def test_deadlines_twelve_hours_run_through_weekends() -> None:
    rule = DeadlineRule.parse("12 hours")
    start = datetime(2026, 3, 7, 3, 0, tzinfo=UTC)  # Saturday
    assert rule.due(start, VN) == start + timedelta(hours=12)
    assert str(rule) == "12 hours"


def test_deadlines_result_is_utc() -> None:
    due = ONE_DAY.due(datetime(2026, 3, 2, 2, 0, tzinfo=UTC), VN)
    assert due.tzinfo is UTC and due == datetime(2026, 3, 3, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "1 day", "0 hours", "tomorrow", "-1 working days"])
def test_deadlines_bad_configuration(text: str) -> None:
    with pytest.raises(InvalidInput):
        DeadlineRule.parse(text)


def test_deadlines_two_working_days() -> None:
    assert DeadlineRule.parse("2 working days").due(local(2026, 3, 5, 18), VN) == local(2026, 3, 9, 18)


def test_deadlines_bad_revocation_setting_stops_the_app() -> None:
    from lifecycle_api.app import create_app
    from lifecycle_api.settings import Settings

    with pytest.raises(InvalidInput):
        create_app(Settings(database_url="sqlite://", revocation_deadline="soon"))


def test_deadlines_revocation_rule_from_settings() -> None:
    from lifecycle_api.app import create_app
    from lifecycle_api.settings import Settings

    app = create_app(Settings(database_url="sqlite://", revocation_deadline="12 hours"))
    assert str(app.state.services.revocation_deadline) == "12 hours"
    assert str(create_app(Settings(database_url="sqlite://")).state.services.revocation_deadline) == "1 working day"
