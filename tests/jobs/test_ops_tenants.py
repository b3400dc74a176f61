"""Operators are not tenant admins, through the running system: a tenant's admin cannot
see, retry or drop another tenant's dead run job; an operator can, and holds no tenant
role besides (both services, a real worker process, the configured database)."""

from __future__ import annotations

import uuid

import pytest

from tests.jobs.conftest import dead_run_job
from tests.support import poll

pytestmark = pytest.mark.e2e


def test_a_tenant_admin_cannot_touch_another_tenants_dead_run_job(system, tenant):
    # Given globex's run job, dead after its 5 attempts, and its failed execution
    globex, acme = tenant, f"t{uuid.uuid4().hex[:8]}"
    _, execution, failed_id, globex_admin = dead_run_job(system, globex)
    olga = system.workflow_client(sub="olga", roles=["admin"], tenant=acme)

    # When acme's admin lists failed jobs, reads, retries and drops globex's
    listed = olga.get("/jobs", params={"state": "failed", "queue": "governance.policy"})
    assert listed.status_code == 200
    assert failed_id not in {j["id"] for j in listed.json()["items"]}
    assert olga.get("/jobs", params={"tenant": globex}).json()["items"] == []
    for method, path in (
        ("GET", f"/jobs/{failed_id}"),
        ("POST", f"/jobs/{failed_id}/retry"),
        ("DELETE", f"/jobs/{failed_id}"),
    ):
        resp = olga.request(method, path)
        # Then each is a 404, as for a job that does not exist (not a 403)
        assert resp.status_code == 404, (method, path, resp.text)
        assert "flaky" not in resp.text

    # And globex's job is still dead, and its execution did not run again
    job = globex_admin.get(f"/jobs/{failed_id}").json()
    assert job["dead_lettered"] is True and job["retried_as"] is None
    assert system.execution(execution["id"], globex)["status"] == "failed"
    queues = olga.get("/queues").json()
    assert queues["tenant"] == acme
    assert all(q["failed_kept"] == 0 and q["dead"] is None for q in queues["items"])

    # When an operator (platform staff, a token of its own tenant) retries it
    operator = system.workflow_client(sub="ops", roles=["operator"], tenant="platform")
    seen = operator.get("/jobs", params={"state": "failed", "tenant": globex}).json()
    assert failed_id in {j["id"] for j in seen["items"]}
    retried = operator.post(f"/jobs/{failed_id}/retry")

    # Then globex's execution runs again and completes
    assert retried.status_code == 202, retried.text
    poll(
        lambda: system.execution(execution["id"], globex)["status"] == "completed",
        timeout=30,
        message="globex's execution to complete after the operator's retry",
    )
    assert globex_admin.get(f"/jobs/{retried.json()['id']}").status_code == 200

    # And the operator role gives no tenant powers: it reads no tenant's executions,
    # workflows or (on the api) jobs and policies
    for path in ("/executions", "/workflows"):
        assert operator.get(path).status_code == 403, path
    api = system.api_client(sub="ops", roles=["operator"], tenant=globex)
    for path in ("/jobs", "/policies"):
        assert api.get(path).status_code == 403, path
