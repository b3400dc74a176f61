"""The operations console in a real headless browser: Debian's chromium driven by
Playwright's Python package, against the running system.

In CI (``CI=true``) a missing chromium is a failure, never a skip; ``make test`` and
``.ci/run`` install it with ``deploy/local/system-packages.sh``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.jobs.conftest import add_workflow, create_policy
from tests.support import poll

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not found and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if not found:
        message = "chromium is not installed (run: bash deploy/local/system-packages.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def test_the_console_page_is_served_without_a_token_and_loads_nothing_foreign(system):
    resp = httpx.get(f"{system.workflow_url}/console")
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    assert httpx.get(f"{system.workflow_url}/console/console.js").status_code == 200
    assert httpx.get(f"{system.workflow_url}/console/secrets.txt").status_code == 404
    assert httpx.get(f"{system.workflow_url}/queues").status_code == 401
    # The workflow web's /metrics carries the queue series, read from Redis on scrape.
    metrics = httpx.get(f"{system.workflow_url}/metrics").text
    for series in (
        "queue_depth",
        "queue_delayed",
        "queue_in_flight",
        "queue_dead",
        "jobs_processed_total",
        "jobs_failed_total",
        "jobs_retried_total",
        "job_duration_seconds_bucket",
    ):
        assert f"governance_{series}{{" in metrics, series


def test_an_operator_retries_a_failed_job_from_the_console(system, tenant, page):
    # Given a run job that failed all 5 attempts of governance.policy (and is dead)
    add_workflow(system, tenant, [{"kind": "flaky", "fail_times": 5}], name="fragile")
    policy = create_policy(system, tenant)
    [execution] = system.wait_for_executions(1, tenant=tenant, status="failed", timeout=30)
    failed_id = execution["job"]["id"]
    ops = system.workflow_client(sub="op", roles=["admin"], tenant=tenant)
    poll(
        lambda: ops.get(f"/jobs/{failed_id}").json().get("dead_lettered"),
        message="the run job in the dead-letter queue",
    )
    requests = []
    page.on("request", lambda request: requests.append(request.url))

    # When an operator opens the console, gives the token once...
    page.goto(f"{system.workflow_url}/console")
    page.fill("#token", system.token(sub="op", roles=["admin"], tenant=tenant))
    page.click("#sign-in")
    page.wait_for_selector('#queues tr[data-queue="governance.policy"]')
    # ...lists the failed jobs of governance.policy and opens this one
    page.select_option("#filter-queue", "governance.policy")
    page.select_option("#filter-state", "failed")
    row = page.locator(f'#jobs tr[data-job-id="{failed_id}"]')
    row.locator('[data-testid="job-link"]').click()
    detail = page.locator("#job-detail")
    detail.locator('dd:has-text("RuntimeError: flaky step failing on attempt 5")').wait_for()
    assert detail.get_attribute("data-state") == "failed"
    assert page.locator("#job-timeline li").count() == 11  # queued + 5 x (running, next)
    # ...and clicks Retry
    page.click("#job-retry")

    # Then the detail follows the new job, which succeeds (the panel refreshes itself)
    page.wait_for_selector('#job-detail[data-state="succeeded"]')
    new_id = page.locator("#job-id").inner_text()
    assert new_id != failed_id
    assert page.locator("#job-action-result").inner_text() == f"Retry of {failed_id}"
    retried = ops.get(f"/jobs/{new_id}").json()
    assert retried["retry_of"] == failed_id and retried["parent"] == policy["jobs"][0]["id"]
    assert ops.get(f"/jobs/{failed_id}").json()["retried_as"] == new_id
    # The execution ran again from its failed step and completed; its step log shows it.
    page.locator(f'#executions tr[data-execution-id="{execution["id"]}"] a').click()
    page.wait_for_selector('#execution-fields [data-state="completed"]')
    assert page.locator("#execution-steps tbody tr").count() == 6
    assert system.execution(execution["id"], tenant)["status"] == "completed"
    # Everything came from the workflow web itself: no CDN, no other origin.
    assert requests and all(url.startswith(system.workflow_url) for url in requests)
    # The token stays in this tab's session storage, not in a cookie or local storage.
    assert page.evaluate("Object.keys(sessionStorage)") == ["governance.console.token"]
    assert page.evaluate("localStorage.length") == 0 and page.context.cookies() == []
