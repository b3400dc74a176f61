"""The whole system (both webs, a worker group) shared by the end-to-end job tests."""

from __future__ import annotations

import uuid

import pytest

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
