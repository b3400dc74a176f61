"""The whole system (both webs, a worker group) shared by the end-to-end job tests."""

from __future__ import annotations

import uuid

import pytest

from tests.support import poll
from tests.system import System

#: governance.policy retries after 100, 200, 400 and 800 ms: a job with 5 attempts is
#: dead-lettered in about 1.5 s.
RETRY_SCALE = 0.05


@pytest.fixture(scope="package")
def system(tmp_path_factory, make_database_url, redis_url):
    env = {
        "RETRY_DELAY_SCALE": str(RETRY_SCALE),
        "WORKFLOW_PLUGINS": "tests.workflow.plugin_steps",
    }
    with System.running(
        tmp_path_factory.mktemp("jobs-system"), make_database_url, redis_url, env=env, workers=1
    ) as running:
        yield running


@pytest.fixture
def tenant():
    return f"t{uuid.uuid4().hex[:8]}"


def add_workflow(system, tenant, steps, name="wf"):
    client = system.workflow_client(tenant=tenant)
    body = {
        "name": name,
        "entity_type": "policy",
        "trigger": "on_create",
        "steps": steps,
        "status": "active",
    }
    response = client.post("/workflows", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def create_policy(system, tenant):
    api = system.api_client(sub="alice", roles=["editor"], tenant=tenant)
    body = {"title": "Passwords", "policy_type": "security", "owner": "bob"}
    response = api.post("/policies", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def dead_run_job(system, tenant):
    """A run job that failed all 5 attempts of governance.policy and is dead-lettered.

    Returns (policy, failed execution, the job's id, an admin client of the workflow
    service).
    """
    add_workflow(system, tenant, [{"kind": "flaky", "fail_times": 5}], name="fragile")
    policy = create_policy(system, tenant)
    [execution] = system.wait_for_executions(1, tenant=tenant, status="failed", timeout=30)
    failed_id = execution["job"]["id"]
    ops = system.workflow_client(sub="op", roles=["admin"], tenant=tenant)
    poll(
        lambda: ops.get(f"/jobs/{failed_id}").json().get("dead_lettered"),
        message="the run job in the dead-letter queue",
    )
    return policy, execution, failed_id, ops
