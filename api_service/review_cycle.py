"""When a policy is next reviewed: its ``review_frequency`` as a period of months.

Kept apart from :mod:`api_service.reviews` (which records reviews) so the policy
service can schedule the first review when a policy is approved or published without
importing the review machinery.
"""

from __future__ import annotations

import calendar
from datetime import date
from typing import Any

#: Months between reviews, by ``review_frequency`` (the values the policy schema takes).
PERIOD_MONTHS = {
    "monthly": 1,
    "quarterly": 3,
    "semiannual": 6,
    "annual": 12,
    "biennial": 24,
}
#: Moves that put a policy in force: each schedules its next review from that day.
SCHEDULING_STATUSES = frozenset({"approved", "published"})


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months; the 31st becomes the month's last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, _last_day(year, month)))


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def next_review(frequency: str | None, today: date) -> date | None:
    """The review date one period after ``today``; None without a frequency."""
    months = PERIOD_MONTHS.get(frequency or "")
    return None if months is None else add_months(today, months)


def on_status_change(frequency: str | None, to: str, today: date) -> dict[str, Any]:
    """The review-date change a move to ``to`` makes: approving or publishing a policy
    with a frequency sets ``next_review_date`` one period from ``today``."""
    if to not in SCHEDULING_STATUSES:
        return {}
    due = next_review(frequency, today)
    return {} if due is None else {"next_review_date": due}
