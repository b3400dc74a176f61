"""Queue control in headless chromium against the running system: pause and resume a
queue, retry every failed job matching a filter after its count, clean, run a delayed
job now.

A screenshot of the queues with a paused one goes to ``CONSOLE_SCREENSHOT_DIR`` (a
temporary directory when it is not set), for the README.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.jobs import test_console
from tests.jobs.conftest import add_workflow, create_policy
from tests.jobs.test_queue_control_system import dead_run_jobs, operator, queue_row, tenant_jobs
from tests.support import poll

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
