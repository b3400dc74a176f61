"""Job status through the running system: POST /policies -> dispatch job -> run jobs,
followed on the api's /jobs (both services, a real worker process, real Redis)."""

from __future__ import annotations

import pytest

from tests.jobs.conftest import add_workflow, create_policy
from tests.support import poll

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
