"""Queue control in headless chromium against the running system: pause and resume a
queue, retry every failed job matching a filter after its count, clean, run a delayed
job now.

Screenshots of the queues with a paused one and of a job waiting on its retry go to
``CONSOLE_SCREENSHOT_DIR`` (a temporary directory when it is not set), for the README.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import dramatiq
import pytest
from playwright.sync_api import expect

from shared.broker import create_broker
from shared.settings import CommonSettings
from tests.jobs import test_console
from tests.jobs.conftest import add_workflow, create_policy
from tests.jobs.test_queue_control_system import dead_run_jobs, operator, queue_row, tenant_jobs
from tests.support import ServiceProcess, poll, python_module

pytestmark = pytest.mark.e2e

# The console tests' chromium (one per module) and page fixtures.
browser = test_console.browser
page = test_console.page

QUEUE = "governance.policy"


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = os.environ.get("CONSOLE_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="console-")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sign_in(system, page, roles=("operator",), tenant="ops"):
    page.goto(f"{system.workflow_url}/console")
    page.fill("#token", system.token(sub="op", roles=list(roles), tenant=tenant))
    page.click("#sign-in")
    page.wait_for_selector(f'#queues tr[data-queue="{QUEUE}"]')


def paused_lines(system) -> int:
    """How often the workers logged that they saw the queue paused."""
    return sum(w.log().count(f"Queue '{QUEUE}' paused") for w in system.workers)


def test_an_operator_pauses_and_resumes_a_queue_from_the_console(system, tenant, page, shots):
    add_workflow(system, tenant, [{"kind": "flaky", "fail_times": 0}], name="console")
    ops = operator(system)
    row = page.locator(f'#queues tr[data-queue="{QUEUE}"]')
    try:
        sign_in(system, page)
        seen = paused_lines(system)
        # When the operator pauses the queue
        row.locator('[data-testid="queue-pause"]').click()

        # Then the row says so, and work written meanwhile waits
        expect(row.locator('[data-testid="queue-paused"]')).to_be_visible()
        assert queue_row(ops)["paused"] is True
        poll(lambda: paused_lines(system) > seen, message="the worker to see the pause")
        policy = create_policy(system, tenant)
        [job] = poll(lambda: tenant_jobs(system, tenant), message="the write's job")
        assert job["id"] == policy["jobs"][0]["id"] and job["state"] == "queued"
        expect(page.locator("#qc-result")).to_have_text(f"Paused {QUEUE}")
        page.click("#refresh")
        expect(row.locator("td").nth(1)).to_have_text("1")  # ready: the write's dispatch
        page.locator("#queues").screenshot(path=str(shots / "console-queues-paused.png"))

        # When it is resumed from the console, the waiting work runs
        row.locator('[data-testid="queue-resume"]').click()
        expect(row.locator('[data-testid="queue-pause"]')).to_be_visible()
        expect(row.locator('[data-testid="queue-paused"]')).to_have_count(0)
        system.wait_for_executions(1, tenant=tenant, status="completed", timeout=60)
        assert queue_row(ops)["paused"] is False
    finally:
        ops.post(f"/queues/{QUEUE}/resume")


def test_a_tenant_admin_sees_a_pause_but_has_no_control(system, tenant, page):
    ops = operator(system)
    try:
        ops.post(f"/queues/{QUEUE}/pause")
        sign_in(system, page, roles=("admin",), tenant=tenant)
        row = page.locator(f'#queues tr[data-queue="{QUEUE}"]')
        expect(row.locator('[data-testid="queue-paused"]')).to_be_visible()
        expect(row.locator("button")).to_have_count(0)
    finally:
        ops.post(f"/queues/{QUEUE}/resume")


def local_minute(moment: datetime) -> str:
    """A datetime-local input's value (the browser's zone is the test's)."""
    return moment.astimezone().strftime("%Y-%m-%dT%H:%M")


def test_an_admin_retries_all_failed_jobs_matching_a_filter_then_cleans(system, tenant, page):
    # Given two run jobs of the tenant that failed all their attempts
    add_workflow(system, tenant, [{"kind": "flaky", "fail_times": 5}], name="fragile")
    executions, _ = dead_run_jobs(system, tenant, 2)
    sign_in(system, page, roles=("admin",), tenant=tenant)

    # When the admin counts the failed jobs of the queue with the error text
    page.select_option("#qc-queue", QUEUE)
    page.fill("#qc-error", "FLAKY STEP")
    page.click("#qc-count")
    expect(page.locator("#qc-result")).to_have_text("2 failed jobs match")
    expect(page.locator("#qc-confirm-text")).to_have_text("Retry 2 failed jobs?")
    # ...and confirms
    page.click("#qc-confirm-yes")

    # Then both are retried and their executions complete
    expect(page.locator("#qc-result")).to_have_text("Retried 2")
    for execution in executions:
        poll(
            lambda e=execution: system.execution(e["id"], tenant)["status"] == "completed",
            timeout=60,
            message="the execution to complete",
        )

    # When the admin cleans the failed jobs of before a minute from now, and confirms
    page.fill("#qc-before", local_minute(datetime.now() + timedelta(minutes=2)))
    page.click("#qc-clean")
    expect(page.locator("#qc-confirm")).to_be_visible()
    page.click("#qc-confirm-yes")

    # Then the two failed records (retried, so kept until now) are gone
    expect(page.locator("#qc-result")).to_have_text("Cleaned 2 failed jobs")
    admin = system.workflow_client(sub="adm", roles=["admin"], tenant=tenant)
    for execution in executions:
        assert admin.get(f"/jobs/{execution['job']['id']}").status_code == 404


#: The test actor's retry waits this long: ample time to open the job and click Run now,
#: and short enough to see the held copy come due (and be dropped) within the test.
RETRY_DELAY_MS = 30_000


def test_an_admin_runs_a_delayed_retry_now_from_the_console(system, tenant, page, tmp_path, shots):
    # Given a worker of test actors, and a job whose first run asks for a retry in 30 s
    worker = ServiceProcess(
        "actors",
        python_module("dramatiq", "tests.jobs.worker_actors", "--queues", "governance.export"),
        system.env,
        tmp_path,
    ).start()
    broker = create_broker(CommonSettings(redis_url=system.redis_url, namespace=system.namespace))
    name = uuid.uuid4().hex
    key = f"{system.namespace}:test:{name}"
    try:
        worker.wait_log("is ready for action")
        broker.client.set(f"{key}:delay", RETRY_DELAY_MS)
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

        # When the tenant's admin opens the job in the console...
        sign_in(system, page, roles=("admin",), tenant=tenant)
        page.select_option("#filter-queue", "governance.export")
        page.locator(f'#jobs tr[data-job-id="{job_id}"] [data-testid="job-link"]').click()
        detail = page.locator("#job-detail")
        expect(detail).to_have_attribute("data-state", "retrying")
        expect(page.locator("#job-promote")).to_be_visible()
        expect(page.locator("#job-attempts tbody tr[data-attempt]")).to_have_count(1)
        # The job's page down to its attempts (the traceback below names the test's files)
        top, bottom = page.evaluate(
            """() => [
              document.getElementById("job-detail").getBoundingClientRect().top,
              document.getElementById("job-attempts").getBoundingClientRect().bottom,
            ].map((y) => y + window.scrollY)"""
        )
        box = detail.bounding_box()
        clip = {"x": box["x"], "y": top, "width": box["width"], "height": bottom - top + 12}
        page.screenshot(path=str(shots / "console-job-retrying.png"), full_page=True, clip=clip)
        # ...and clicks Run now
        page.click("#job-promote")

        # Then the job runs now: it succeeds before its retry's time comes (the worker
        # has not yet come to the held copy), and the page shows it
        expect(page.locator("#job-action-result")).to_have_text("Running now")
        poll(
            lambda: admin.get(f"/jobs/{job_id}").json()["state"] == "succeeded",
            timeout=20,
            message="the promoted job to succeed",
        )
        assert "was promoted already" not in worker.log()
        page.click("#refresh")
        expect(detail).to_have_attribute("data-state", "succeeded")
        expect(page.locator("#job-promote")).to_be_hidden()

        # And once: when the held copy comes due the worker drops it, and the actor ran
        # twice in all (the first run that asked for the retry, and the promoted one)
        worker.wait_log(f"Delayed message {job_id} was promoted already", timeout=90)
        assert int(broker.client.get(key)) == 2
        job = admin.get(f"/jobs/{job_id}").json()
        assert job["state"] == "succeeded" and job["attempt"] == 2
        row = queue_row(operator(system), "governance.export")
        assert (row["ready"], row["delayed"], row["in_flight"], row["dead"]) == (0, 0, 0, 0)
    finally:
        worker.stop()
        broker.close()
