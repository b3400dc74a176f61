"""Job status through the running system: POST /policies -> dispatch job -> run jobs,
followed on the api's /jobs (both services, a real worker process, real Redis)."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import falcon
import pytest
import redis
from falcon import testing
from prometheus_client import CollectorRegistry

from shared.auth import AuthMiddleware, TokenDecoder
from shared.broker import create_broker
from shared.http import ApiDocs, install_error_handling
from shared.settings import CommonSettings
from tests.conftest import JWT_SECRET
from tests.jobs.conftest import add_workflow, create_policy, dead_run_job
from tests.support import free_port, poll
from workflow_service.db import database, init_database
from workflow_service.ops import register_ops

pytestmark = pytest.mark.e2e


def job(system, job_id, tenant):
    client = system.api_client(roles=["viewer"], tenant=tenant)
    return client.get(f"/jobs/{job_id}")


def wait_job(system, job_id, tenant, check, message):
    def ready():
        resp = job(system, job_id, tenant)
        return resp.status_code == 200 and check(resp.json()) and resp.json()

    return poll(ready, timeout=30, message=message)


def test_a_policy_write_leads_to_its_dispatch_job_and_the_executions_it_started(system, tenant):
    add_workflow(system, tenant, [{"kind": "flaky", "fail_times": 0}], name="first")
    add_workflow(system, tenant, [{"kind": "flaky", "fail_times": 0}], name="second")

    policy = create_policy(system, tenant)

    [link] = policy["jobs"]
    dispatch = wait_job(
        system,
        link["id"],
        tenant,
        lambda j: j["state"] == "succeeded" and j["children"]["total"] == 2,
        "the dispatch job to start two executions",
    )
    assert dispatch["actor"] == "dispatch_event" and dispatch["queue"] == "governance.policy"
    assert dispatch["parent"] is None
    executions = {
        e["job"]["id"]: e for e in system.wait_for_executions(2, tenant=tenant, status="completed")
    }
    children = {c["id"] for c in dispatch["children"]["items"]}
    assert children == set(executions)
    for child_id in children:
        child = wait_job(
            system, child_id, tenant, lambda j: j["state"] == "succeeded", "the run job to succeed"
        )
        assert child["parent"] == dispatch["id"] and child["actor"] == "run_execution"
        assert child["tenant_id"] == tenant and child["progress"]["percent"] == 100

    # Another tenant sees none of it.
    other = system.api_client(roles=["admin"], tenant=f"{tenant}x")
    for job_id in [dispatch["id"], *children]:
        assert other.get(f"/jobs/{job_id}").status_code == 404
    assert other.get("/jobs").json()["items"] == []
    mine = system.api_client(roles=["viewer"], tenant=tenant).get("/jobs").json()["items"]
    assert {j["id"] for j in mine} == {dispatch["id"], *children}


def test_progress_is_visible_while_a_slow_execution_runs(system, tenant):
    add_workflow(
        system,
        tenant,
        [
            {"kind": "slow_note", "seconds": 0},
            {"kind": "slow_note", "seconds": 1.5},
            {"kind": "slow_note", "seconds": 0},
        ],
    )
    policy = create_policy(system, tenant)
    dispatch = wait_job(
        system,
        policy["jobs"][0]["id"],
        tenant,
        lambda j: j["children"]["total"] == 1,
        "the run job",
    )
    run_id = dispatch["children"]["items"][0]["id"]

    running = wait_job(
        system,
        run_id,
        tenant,
        lambda j: j["state"] == "running" and (j["progress"] or {}).get("percent") == 33,
        "progress while the second step runs",
    )
    assert running["progress"]["message"] == "step 2 of 3"

    done = wait_job(system, run_id, tenant, lambda j: j["state"] == "succeeded", "the end")
    assert done["progress"] == {**done["progress"], "percent": 100, "message": "done"}


@contextlib.contextmanager
def ops_web_without_redis_for_sending(system):
    """The workflow web's ops routes, wired as in production, on the system's Redis and
    workflow database, but sending new jobs through a Redis that is not there."""
    settings = CommonSettings(
        redis_url=system.redis_url, namespace=system.namespace, jwt_secret=JWT_SECRET
    )
    unreachable = CommonSettings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", namespace=system.namespace
    )
    client = redis.Redis.from_url(system.redis_url)
    broker = create_broker(unreachable)
    previous = database.obj
    db = init_database(system.workflow_database_url)
    app = falcon.App(middleware=[AuthMiddleware(TokenDecoder(JWT_SECRET))])
    install_error_handling(app)
    deps = SimpleNamespace(redis=client, broker=broker, registry=CollectorRegistry())
    register_ops(app, ApiDocs("ops", "1"), SimpleNamespace(settings=settings, deps=deps))
    try:
        yield testing.TestClient(app)
    finally:
        db.close()
        database.initialize(previous)
        broker.close()
        client.close()


def test_a_retry_that_cannot_send_the_new_job_changes_nothing(system, tenant):
    # Given a run job dead after its 5 attempts, and its execution failed
    _, execution, failed_id, ops = dead_run_job(system, tenant)
    before = system.execution(execution["id"], tenant)

    # When an operator retries it and sending the new job fails (Redis unreachable)
    with ops_web_without_redis_for_sending(system) as web:
        token = system.token(sub="op", roles=["admin"], tenant=tenant)
        resp = web.simulate_post(
            f"/jobs/{failed_id}/retry", headers={"Authorization": f"Bearer {token}"}
        )

    # Then it answers 503 and nothing changed: the execution is failed as it was (not
    # pending for a job that does not exist), and the job is still dead
    assert resp.status_code == 503, resp.text
    assert system.execution(execution["id"], tenant) == before
    job = ops.get(f"/jobs/{failed_id}").json()
    assert job["dead_lettered"] is True and job.get("retried_as") is None

    # And a retry that can send runs the execution again to completion
    retried = ops.post(f"/jobs/{failed_id}/retry")
    assert retried.status_code == 202, retried.text
    poll(
        lambda: system.execution(execution["id"], tenant)["status"] == "completed",
        timeout=30,
        message="the retried execution to complete",
    )
    assert system.execution(execution["id"], tenant)["job"]["id"] == retried.json()["id"]
