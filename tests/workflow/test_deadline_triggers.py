"""Deadline triggers end to end: the api's relay notices review dates, workflows run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.system import System

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(tmp_path_factory, make_database_url, redis_url):
    env = {"DEADLINE_SCAN_INTERVAL_SECONDS": "0.2", "RELAY_INTERVAL_SECONDS": "0.1"}
    with System.running(
        tmp_path_factory.mktemp("deadlines"), make_database_url, redis_url, env=env, relay=True
    ) as running:
        yield running


def add_workflow(system, tenant, trigger, subject):
    body = {
        "name": trigger,
        "entity_type": "policy",
        "trigger": trigger,
        "conditions": [],
        "steps": [{"kind": "notify", "recipients": ["owner"], "subject": subject}],
        "status": "active",
    }
    response = system.workflow_client(tenant=tenant).post("/workflows", json=body)
    assert response.status_code == 201, response.text


def test_review_dates_coming_up_and_passed_start_their_workflows(system):
    tenant = "deadlines"
    add_workflow(
        system,
        tenant,
        "on_deadline_approaching",
        "{{ entity.title }}: review in {{ entity.days_left }} days",
    )
    add_workflow(system, tenant, "on_deadline_passed", "{{ entity.title }}: review overdue")
    api = system.api_client(sub="olivia", roles=["editor"], tenant=tenant)
    today = datetime.now(UTC).date()
    for title, days in (("Soon", 3), ("Late", -2), ("Far", 90)):
        body = {
            "title": title,
            "policy_type": "security",
            "next_review_date": (today + timedelta(days=days)).isoformat(),
        }
        assert api.post("/policies", json=body).status_code == 201

    done = system.wait_for_executions(2, tenant=tenant, status="completed")
    assert sorted(e["event_type"] for e in done) == [
        "policy.deadline_approaching",
        "policy.deadline_passed",
    ]
    inbox = system.workflow_client(sub="olivia", roles=["viewer"], tenant=tenant)
    subjects = sorted(n["subject"] for n in inbox.get("/notifications").json()["items"])
    assert subjects == ["Late: review overdue", "Soon: review in 3 days"]
    # Scans go on (five a second), but each review date was noticed once
    time.sleep(1)
    assert len(system.executions(tenant)) == 2
