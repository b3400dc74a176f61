"""Deadline events as the scanner builds them: its rules, the event of a row, and the
event id that makes each notice come once per date. The rows are plain objects; which
rows are due is a query, tested with a database in tests/api."""

from __future__ import annotations

from datetime import date, datetime
from types import SimpleNamespace

from api_service.deadlines import APPROACHING, PASSED, DeadlineScanner, deadline_event, event_id
from api_service.policies import SNAPSHOT_FIELDS


def rules(**options):
    return {rule.kind: rule for rule in DeadlineScanner(None, datetime.now, **options).rules}


def test_the_rules_cover_policies_assessments_and_evidence():
    assert {rule.event_type for rule in rules().values()} == {
        "policy.deadline_passed",
        "policy.deadline_approaching",
        "assessment.overdue",
        "assessment.due_approaching",
        "evidence.expired",
        "evidence.expiring",
    }
    assert [rule.kind for rule in rules().values() if rule.expires] == ["expired"]


def test_each_expiring_threshold_has_its_own_notice():
    by_kind = rules(expiring_days=(7, 30, 7, 1))
    assert sorted(r.threshold for r in by_kind.values() if r.threshold) == [1, 7, 30]
    assert {"expiring_1", "expiring_7", "expiring_30"} <= set(by_kind)


def policy_row(**fields):
    row = {name: None for name in SNAPSHOT_FIELDS}
    row.update(id="p-1", tenant="acme", title="Passwords", status="published", version=3)
    row.update(next_review_date=date(2026, 3, 10), tags=["it"], **fields)
    return SimpleNamespace(**row)


def test_an_approaching_review_carries_the_snapshot_the_deadline_and_the_days_left():
    rule = rules()[APPROACHING]
    event = deadline_event(rule, policy_row(), date(2026, 3, 1), datetime(2026, 3, 1, 6))
    assert event.event_type == "policy.deadline_approaching"
    assert (event.entity_type, event.entity_id, event.tenant_id) == ("policy", "p-1", "acme")
    assert event.actor is None  # a date coming up is nobody's change
    assert event.data["deadline"] == "2026-03-10" and event.data["days_left"] == 9
    assert event.data["title"] == "Passwords" and event.data["next_review_date"] == "2026-03-10"
    assert event.occurred_at.tzinfo is not None


def test_a_passed_review_has_negative_days_left():
    event = deadline_event(
        rules()[PASSED], policy_row(), date(2026, 3, 12), datetime(2026, 3, 12, 6)
    )
    assert event.event_type == "policy.deadline_passed" and event.data["days_left"] == -2


def test_the_same_notice_always_has_the_same_event_id_and_a_new_date_another():
    rule = rules()[APPROACHING]
    row = policy_row()
    first = event_id(rule, row, date(2026, 3, 10))
    assert event_id(rule, row, date(2026, 3, 10)) == first
    assert event_id(rule, row, date(2026, 4, 10)) != first
    assert event_id(rules()[PASSED], row, date(2026, 3, 10)) != first
    assert event_id(rule, policy_row(id="p-2"), date(2026, 3, 10)) != first
    # The events of one scan built twice are one notice.
    today, now = date(2026, 3, 1), datetime(2026, 3, 1, 6)
    assert deadline_event(rule, row, today, now).event_id == first
