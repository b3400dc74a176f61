"""Condition operators and dotted paths."""

from __future__ import annotations

import pytest

from workflow_service.conditions import matches

DATA = {
    "status": "in_review",
    "score": 7,
    "tags": ["gdpr", "hr"],
    "title": "Password policy",
    "owner": None,
    "changes": {"status": {"old": "draft", "new": "in_review"}},
    "review": {"due": "2026-12-01"},
}
ENVELOPE = {"event_type": "policy.updated", "actor": "alice"}


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("status", "eq", "in_review", True),
        ("status", "eq", "draft", False),
        ("missing", "eq", None, False),
        ("status", "ne", "draft", True),
        ("missing", "ne", "x", True),
        ("status", "in", ["draft", "in_review"], True),
        ("status", "in", ["draft"], False),
        ("missing", "in", ["x"], False),
        ("status", "not_in", ["draft"], True),
        ("missing", "not_in", ["draft"], True),
        ("score", "gt", 6, True),
        ("score", "gt", 7, False),
        ("score", "gte", 7, True),
        ("score", "lt", 8, True),
        ("score", "lte", 6, False),
        ("score", "gt", "6", False),  # no comparing a number with a string
        ("missing", "lt", 5, False),
        ("review.due", "lt", "2027-01-01", True),
        ("tags", "contains", "gdpr", True),
        ("tags", "contains", "sox", False),
        ("title", "contains", "Password", True),
        ("score", "contains", 7, False),
        ("owner", "exists", None, False),  # present but null counts as absent
        ("status", "exists", True, True),
        ("missing", "exists", False, True),
        ("changes.status.new", "eq", "in_review", True),
        ("changes.status.old.deeper", "eq", "x", False),
        ("tags.1", "eq", "hr", True),
        ("tags.5", "exists", None, False),
        ("event.actor", "eq", "alice", True),
        ("event.event_type", "in", ["policy.updated"], True),
    ],
)
def test_operator(field, op, value, expected):
    assert matches([{"field": field, "op": op, "value": value}], DATA, ENVELOPE) is expected


def test_all_conditions_must_hold_and_none_always_matches():
    assert matches([], DATA)
    both = [
        {"field": "status", "op": "eq", "value": "in_review"},
        {"field": "score", "op": "gt", "value": 9},
    ]
    assert not matches(both, DATA)
