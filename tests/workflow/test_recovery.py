"""A killed worker's work resumes on time: within the heartbeat timeout plus ten seconds.

Dramatiq's own maintenance chance is left at its default (one Redis command in a
thousand), so only the workers' maintenance timer can requeue the dead worker's message
in time. The heartbeat timeout is shortened to 3 s; the mechanism runs as in production.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support import poll
from tests.system import System
from tests.workflow.test_e2e import add_workflow, create_policy

pytestmark = pytest.mark.e2e

HEARTBEAT_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def system(tmp_path_factory, make_database_url, redis_url):
    env = {
        "WORKFLOW_PLUGINS": "tests.workflow.plugin_steps",
        "WORKER_HEARTBEAT_TIMEOUT_MS": str(HEARTBEAT_TIMEOUT_S * 1000),
    }
    with System.running(
        tmp_path_factory.mktemp("recovery"), make_database_url, redis_url, env=env, workers=1
    ) as running:
        yield running


def test_a_killed_workers_execution_resumes_on_another_worker_within_the_timeout(system):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    add_workflow(
        system, tenant, "on_create", [{"kind": "slow_note", "seconds": 2, "recipient": "observer"}]
    )
    create_policy(system, tenant)
    [running] = system.wait_for_executions(1, tenant=tenant, status="running")
    poll(lambda: system.execution(running["id"], tenant)["steps"], message="the step started")
    doomed = system.workers[0]
    system.start_worker()  # up and idle before the kill: recovery is not its boot time

    # When: the worker running the step is killed with SIGKILL
    system.kill(doomed)
    killed_at = time.monotonic()

    # Then: the other worker resumes the execution within the timeout plus ten seconds
    def resumed():
        steps = system.execution(running["id"], tenant)["steps"]
        return any(step["attempt"] == 2 for step in steps)

    poll(resumed, timeout=HEARTBEAT_TIMEOUT_S + 10, interval=0.1, message="the step resumed")
    recovery = time.monotonic() - killed_at
    print(f"resumed {recovery:.1f}s after the kill")  # shown with -s; the README quotes it
    assert recovery >= HEARTBEAT_TIMEOUT_S - 1.5  # redelivered because the worker went silent

    [done] = system.wait_for_executions(1, tenant=tenant, status="completed", timeout=20)
    steps = system.execution(done["id"], tenant)["steps"]
    assert [(s["attempt"], s["status"]) for s in steps] == [(1, "failed"), (2, "completed")]
    observer = system.workflow_client(sub="observer", roles=["viewer"], tenant=tenant)
    assert len(observer.get("/notifications").json()["items"]) == 1
