"""When a scheduled workflow's cron schedule fires: the time a late job fires for, in
the schedule's time zone, and crontab's weekdays (APScheduler 3 counts from Monday)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflow_service.definitions import cron_trigger
from workflow_service.scheduler import scheduled_fire_time

MONDAY_9 = datetime(2024, 6, 3, 9, 0)


@pytest.mark.parametrize(
    ("cron", "timezone", "runs_at", "fires_for"),
    [
        # on time, and late within the misfire grace
        ("0 9 * * *", "UTC", MONDAY_9, MONDAY_9),
        ("0 9 * * *", "UTC", MONDAY_9 + timedelta(seconds=29.9), MONDAY_9),
        (
            "*/5 * * * *",
            "UTC",
            MONDAY_9 + timedelta(minutes=5, seconds=3),
            MONDAY_9.replace(minute=5),
        ),
        # in the schedule's time zone, stored as UTC (Berlin is UTC+2 in June)
        ("0 11 * * *", "Europe/Berlin", MONDAY_9 + timedelta(seconds=1), MONDAY_9),
        # nothing scheduled within the look-back
        ("0 9 * * *", "UTC", MONDAY_9 - timedelta(seconds=1), None),
        ("0 9 * * *", "UTC", MONDAY_9 + timedelta(minutes=2), None),
    ],
)
def test_a_cron_job_fires_for_its_scheduled_time(cron, timezone, runs_at, fires_for):
    trigger = cron_trigger(cron, timezone)
    assert scheduled_fire_time(trigger, runs_at) == fires_for


@pytest.mark.parametrize(
    ("weekdays", "fires_on"),
    [
        ("1", ["Mon"]),
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("*/3", ["Sun", "Wed", "Sat"]),
        ("sat,sun", ["Sat", "Sun"]),
    ],
)
def test_crontab_weekdays_count_from_sunday(weekdays, fires_on):
    # APScheduler 3 counts 0 as Monday; a crontab line means what crontab means
    trigger = cron_trigger(f"0 9 * * {weekdays}")
    start = datetime(2026, 11, 29, tzinfo=UTC)  # a Sunday
    days, at = set(), start
    while (at := trigger.get_next_fire_time(None, at)) < start + timedelta(days=7):
        days.add(at.strftime("%a"))
        at += timedelta(minutes=1)
    assert days == set(fires_on)
