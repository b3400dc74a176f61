"""The console's job search and job page in headless chromium against the running
system: search by entity id, the job's execution, attempts and arguments, and cancel
the execution from the job page. A screenshot of the job page goes to
``CONSOLE_SCREENSHOT_DIR`` (a temporary directory when it is not set), for the README.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.jobs import test_console
from tests.jobs.conftest import add_workflow, create_policy
from tests.support import poll

pytestmark = pytest.mark.e2e

# The console tests' chromium (one per module) and page fixtures.
browser = test_console.browser
page = test_console.page


def screenshot_dir() -> Path:
    folder = os.environ.get("CONSOLE_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="console-")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_an_admin_finds_a_job_by_entity_and_cancels_its_execution(system, tenant, page):
    # Given a workflow that parks its execution for carol's approval, and a policy
    add_workflow(
        system,
        tenant,
        [{"kind": "require_approval", "approvers": ["carol"], "on_approve": []}],
        name="review",
    )
    policy = create_policy(system, tenant)
    [execution] = system.wait_for_executions(
        1, tenant=tenant, status="waiting_approval", timeout=30
    )
    run_job = execution["job"]["id"]

    # When the tenant's admin searches the console's jobs by the policy's id
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{system.workflow_url}/console")
    page.fill("#token", system.token(sub="ada", roles=["admin"], tenant=tenant))
    page.click("#sign-in")
    page.wait_for_selector('#queues tr[data-queue="governance.policy"]')
    page.fill("#search-entity", policy["id"])
    page.press("#search-entity", "Enter")
    # Then both jobs about the policy are listed (the write's dispatch and the run)
    rows = page.locator("#jobs tbody tr")
    expect(rows).to_have_count(2)
    # And the run job's page shows its execution with the step log, attempts, arguments
    page.locator(f'#jobs tr[data-job-id="{run_job}"] [data-testid="job-link"]').click()
    box = page.locator("#job-execution")
    expect(box).to_have_attribute("data-status", "waiting_approval")
    expect(page.locator("#job-execution-steps tbody tr")).to_have_count(1)
    expect(page.locator("#job-attempts tbody tr[data-attempt]")).to_have_count(1)
    expect(page.locator("#job-arguments")).to_contain_text(execution["id"])
    page.locator("#job-detail").screenshot(path=str(screenshot_dir() / "console-job.png"))

    # When the admin cancels the execution from the job page
    page.click("#job-cancel")
    # Then the execution reads cancelled there, the cancel button is gone, and the
    # job's tree reads cancelled
    expect(box).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#job-cancel")).to_be_hidden()
    assert system.execution(execution["id"], tenant)["status"] == "cancelled"
    ops = system.workflow_client(sub="ada", roles=["admin"], tenant=tenant)
    poll(
        lambda: ops.get(f"/jobs/{run_job}").json()["tree_state"] == "cancelled",
        message="the run job's tree to read cancelled",
    )
