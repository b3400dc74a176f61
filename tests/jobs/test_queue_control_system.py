"""Queue control end to end: the real system (both webs, worker processes, Redis).

A queue paused under load takes no new message within a second, finishes what runs and
loses nothing; the pause outlasts a worker restart; failed jobs are retried in bulk and
cleaned; a delayed retry is promoted and runs once.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import dramatiq

from shared.broker import create_broker
from shared.settings import CommonSettings
from tests.jobs.conftest import add_workflow, create_policy
from tests.support import ServiceProcess, poll, python_module

QUEUE = "governance.policy"


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def operator(system):
    return system.workflow_client(sub="op", roles=["operator"], tenant="ops")


def queue_row(ops, name=QUEUE):
    rows = ops.get("/queues").json()["items"]
    return next(r for r in rows if r["name"] == name)


def tenant_jobs(system, tenant):
    """Every job record of ``tenant`` on QUEUE (all pages)."""
    admin = system.workflow_client(sub="adm", roles=["admin"], tenant=tenant)
    items, cursor = [], None
    while True:
        params = {"queue": QUEUE, "limit": 200, **({"cursor": cursor} if cursor else {})}
        page = admin.get("/jobs", params=params).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


class Load:
    """Writes policies of ``tenant`` one after another until stopped (each write sends a
    dispatch job, which starts a run job)."""

    def __init__(self, system, tenant):
        self.api = system.api_client(sub="alice", roles=["editor"], tenant=tenant)
        self.created: list[tuple[str, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        body = {"title": "Passwords", "policy_type": "security", "owner": "bob"}
        while not self.stop.is_set():
            response = self.api.post("/policies", json=body)
            assert response.status_code == 201, response.text
            self.created.append((response.json()["id"], datetime.now(UTC).timestamp()))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def test_a_queue_paused_under_load_takes_nothing_new_and_loses_nothing(system, tenant):
    add_workflow(system, tenant, [{"kind": "flaky", "fail_times": 0}], name="load")
    ops = operator(system)
    dead = queue_row(ops)["dead"]  # other tests' dead letters
    try:
        with Load(system, tenant) as load:
            poll(lambda: len(load.created) >= 5, message="work flowing")
            # When an operator pauses the queue while policies keep being written
            resp = ops.post(f"/queues/{QUEUE}/pause")
            assert resp.status_code == 200, resp.text
            paused_at = ms(resp.json()["paused_at"])
            written = len(load.created)
            poll(lambda: len(load.created) >= written + 5, message="writes during the pause")

            # Then what runs finishes, and new work waits in the queue
            row = poll(
                lambda: (r := queue_row(ops))["in_flight"] == 0 and r["ready"] > 0 and r,
                message="in-flight work done and new work waiting",
            )
            assert row["paused"] is True and row["paused_by"] == "op"
            metrics = ops.get("/metrics").text
            assert f'governance_queue_paused{{queue="{QUEUE}"}} 1.0' in metrics
            started = [ms(j["started_at"]) for j in tenant_jobs(system, tenant) if j["started_at"]]
            # No job started later than a second after the pause
            assert started and max(started) <= paused_at + 1000, (max(started), paused_at)
        # When it is resumed
        assert ops.post(f"/queues/{QUEUE}/resume").json()["paused"] is False
    finally:
        ops.post(f"/queues/{QUEUE}/resume")

    # Then every write's work runs exactly once: one execution per policy, each job
    # succeeded on its first attempt, nothing dead
    total = len(load.created)
    system.wait_for_executions(total, tenant=tenant, status="completed", timeout=120)
    jobs = poll(
        lambda: (
            (j := tenant_jobs(system, tenant))
            and len(j) == 2 * total
            and all(x["state"] == "succeeded" for x in j)
            and j
        ),
        timeout=60,
        message="every job succeeded",
    )
    assert {j["attempt"] for j in jobs} == {1}
    assert len({j["id"] for j in jobs}) == 2 * total
    row = queue_row(ops)
    assert row["dead"] == dead and row["paused"] is False


def test_a_pause_outlasts_a_worker_restart(system, tenant):
    add_workflow(system, tenant, [{"kind": "flaky", "fail_times": 0}], name="restart")
    ops = operator(system)
    try:
        ops.post(f"/queues/{QUEUE}/pause")
        # When the worker is restarted while the queue is paused
        for worker in list(system.workers):
            system.terminate(worker)
        worker = system.start_worker()
        worker.wait_log(f"Queue '{QUEUE}' paused")
        policy = create_policy(system, tenant)

        # Then the new worker leaves the queue's work waiting
        [job] = poll(lambda: tenant_jobs(system, tenant), message="the write's job")
        assert job["id"] == policy["jobs"][0]["id"] and job["state"] == "queued"
        assert queue_row(ops)["ready"] >= 1

        # Until the queue is resumed
        ops.post(f"/queues/{QUEUE}/resume")
        system.wait_for_executions(1, tenant=tenant, status="completed", timeout=60)
    finally:
        ops.post(f"/queues/{QUEUE}/resume")


def dead_run_jobs(system, tenant, count):
    """``count`` run jobs of ``tenant`` that failed all their attempts (dead-lettered)."""
    for _ in range(count):
        create_policy(system, tenant)
    executions = system.wait_for_executions(count, tenant=tenant, status="failed", timeout=60)
    admin = system.workflow_client(sub="adm", roles=["admin"], tenant=tenant)
    for execution in executions:
        poll(
            lambda e=execution: admin.get(f"/jobs/{e['job']['id']}").json().get("dead_lettered"),
            message="the run job in the dead-letter queue",
        )
    return executions, admin


def test_failed_jobs_are_retried_in_bulk_after_a_confirmed_count_and_cleaned(system, tenant):
    # Given two run jobs that failed all their attempts
    add_workflow(system, tenant, [{"kind": "flaky", "fail_times": 5}], name="fragile")
    executions, admin = dead_run_jobs(system, tenant, 2)
    where = {"queue": QUEUE, "error": "flaky step failing"}

    # When the tenant's admin counts them, then confirms the count
    count = admin.post("/jobs/retry-failed", json={**where, "dry_run": True}).json()
    assert count["count"] == 2
    nothing = {"queue": QUEUE, "error": "no such failure", "dry_run": True}
    assert admin.post("/jobs/retry-failed", json=nothing).json()["count"] == 0
    resp = admin.post("/jobs/retry-failed", json={**where, "confirmation": count["confirmation"]})

    # Then both run again and their executions complete
    assert resp.status_code == 200, resp.text
    assert resp.json()["retried"] == 2
    for execution in executions:
        poll(
            lambda e=execution: system.execution(e["id"], tenant)["status"] == "completed",
            timeout=60,
            message="the execution to complete",
        )
    again = admin.post("/jobs/retry-failed", json={**where, "dry_run": True}).json()
    assert again["count"] == 0

    # And failed jobs are cleaned away by the admin: a new one with its dead letter, and
    # the two retried ones (their records were still kept)
    [third], _ = dead_run_jobs(system, tenant, 1)
    before = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    cleaned = admin.post("/jobs/clean", json={"state": "failed", "before": before})
    assert cleaned.status_code == 200, cleaned.text
    assert cleaned.json() == {"records": 3, "dead_letters": 0}
    for execution in (*executions, third):
        assert admin.get(f"/jobs/{execution['job']['id']}").status_code == 404


def test_a_promoted_retry_runs_now_and_once(system, tenant, tmp_path):
    # Given a worker of test actors, and a job whose retry waits 3 s
    worker = ServiceProcess(
        "actors",
        python_module("dramatiq", "tests.jobs.worker_actors", "--queues", "governance.export"),
        system.env,
        tmp_path,
    ).start()
    settings = CommonSettings(redis_url=system.redis_url, namespace=system.namespace)
    broker = create_broker(settings)
    name = uuid.uuid4().hex
    key = f"{system.namespace}:test:{name}"
    try:
        worker.wait_log("is ready for action")
        broker.client.set(f"{key}:delay", 3000)
        message = dramatiq.Message(
            queue_name="governance.export",
            actor_name="later",
            args=(name,),
            kwargs={},
            options={"tenant_id": tenant},
        )
        job_id = broker.enqueue(message).message_id
        admin = system.workflow_client(sub="adm", roles=["admin"], tenant=tenant)
        poll(
            lambda: admin.get(f"/jobs/{job_id}").json()["state"] == "retrying",
            message="the job waiting on its retry",
        )

        held = f"{system.namespace}:__acks__.*.governance.export.DQ"
        poll(
            lambda: any(broker.client.scard(k) for k in broker.client.scan_iter(match=held)),
            message="the worker to hold the delayed retry in memory",
        )

        # When its tenant's admin promotes it
        resp = admin.post(f"/jobs/{job_id}/promote")

        # Then it runs now, and the copy the worker held is not sent when its time comes
        assert resp.status_code == 202, resp.text
        poll(lambda: admin.get(f"/jobs/{job_id}").json()["state"] == "succeeded")
        worker.wait_log(f"Delayed message {job_id} was promoted already")
        assert int(broker.client.get(key)) == 2
        row = queue_row(operator(system), "governance.export")
        assert (row["ready"], row["delayed"], row["in_flight"], row["dead"]) == (0, 0, 0, 0)
    finally:
        worker.stop()
        broker.close()
