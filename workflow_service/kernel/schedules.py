"""What the scheduler and the operators' views of it share: where the leader lock
lives and when a cron trigger fires next.

Kernel: the scheduler (an entry point) runs the schedules; the operations feature shows
them (``GET /schedules``) without importing the scheduler.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger


def leader_key(namespace: str) -> str:
    """The Redis key of the schedulers' leader lock."""
    return f"{namespace}:scheduler:leader"


def next_fire_times(trigger: BaseTrigger, now: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` times (aware UTC) ``trigger`` fires after ``now`` (naive
    UTC), as APScheduler computes them for the cron job the scheduler adds for a
    scheduled workflow."""
    times: list[datetime] = []
    previous = None
    at = now.replace(tzinfo=UTC)
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, at)
        if fire is None:
            break
        times.append(fire.astimezone(UTC))
        previous, at = fire, fire + timedelta(microseconds=1)
    return times
