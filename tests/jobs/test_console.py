"""The operations console in a real headless browser: Debian's chromium driven by
Playwright's Python package, against the running system.

In CI (``CI=true``) a missing chromium is a failure, never a skip; ``make test`` and
``.ci/run`` install it with ``deploy/local/system-packages.sh``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import dramatiq
import httpx
import pytest
from playwright.sync_api import expect

from shared.broker import create_broker
from shared.jobstatus import JobStatusStore
from shared.settings import CommonSettings
from tests.jobs.conftest import dead_run_job
from tests.support import poll

#: A catalog queue no worker of the jobs system consumes: jobs sent there stay queued.
IDLE_QUEUE = "governance.import"

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


def screenshot_dir() -> Path:
    """``CONSOLE_SCREENSHOT_DIR`` (a temporary directory when it is not set), for the README."""
    folder = os.environ.get("CONSOLE_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="console-")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_the_console_page_is_served_without_a_token_and_loads_nothing_foreign(system):
    resp = httpx.get(f"{system.workflow_url}/console")
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    assert httpx.get(f"{system.workflow_url}/console/console.js").status_code == 200
    assert httpx.get(f"{system.workflow_url}/console/secrets.txt").status_code == 404
    assert httpx.get(f"{system.workflow_url}/queues").status_code == 401
    # The workflow web's /metrics carries the queue series, read from Redis on scrape.
    operator = {"Authorization": f"Bearer {system.token('ops', ('operator',), tenant='ops')}"}
    metrics = httpx.get(f"{system.workflow_url}/metrics", headers=operator).text
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
    policy, execution, failed_id, ops = dead_run_job(system, tenant)
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


@contextlib.contextmanager
def queued_jobs(system, tenant, count):
    """``count`` jobs of ``tenant`` waiting on IDLE_QUEUE; dropped afterwards."""
    broker = create_broker(CommonSettings(redis_url=system.redis_url, namespace=system.namespace))
    store = JobStatusStore(broker.client, system.namespace)
    messages = [
        dramatiq.Message(
            queue_name=IDLE_QUEUE,
            actor_name="import_rows",
            args=(n,),
            kwargs={},
            options={"tenant_id": tenant},
        )
        for n in range(count)
    ]
    sent = broker.enqueue_many(messages)
    try:
        yield [m.message_id for m in sent]
    finally:
        broker.flush(IDLE_QUEUE)
        for message in sent:
            store.delete(message.message_id)
        broker.close()


def open_console(system, page, tenant, roles=("admin",)):
    page.goto(f"{system.workflow_url}/console")
    page.fill("#token", system.token(sub="op", roles=list(roles), tenant=tenant))
    page.click("#sign-in")
    page.wait_for_selector(f'#queues tr[data-queue="{IDLE_QUEUE}"]')


def show_jobs(page, tenant, state=""):
    """Filter the jobs table (a tenant's admin sees only its tenant: no tenant filter)."""
    page.select_option("#filter-queue", IDLE_QUEUE)
    page.select_option("#filter-state", state)
    if page.is_visible("#filter-tenant"):
        page.fill("#filter-tenant", tenant)
        page.press("#filter-tenant", "Enter")


# (Waits go through locators: the page's CSP forbids the eval of wait_for_function.)
def job_rows(page, count):
    expect(page.locator("#jobs tbody tr")).to_have_count(count)


def clear_status(page):
    page.evaluate("document.getElementById('status').textContent = ''")


def next_status(page):
    """Clear the header's status line and wait for a refresh to write it again."""
    clear_status(page)
    expect(page.locator("#status")).not_to_be_empty()


def test_pages_added_with_more_stay_through_auto_refresh(system, tenant, page):
    # Given 60 waiting jobs of a tenant: 50 on the first page, 10 more behind "More"
    with queued_jobs(system, tenant, 60):
        open_console(system, page, tenant)
        show_jobs(page, tenant)
        expect(page.locator("#jobs-more")).to_be_visible()  # the filters' first page
        job_rows(page, 50)

        # When the operator shows the next page and the console refreshes on its own
        page.click("#jobs-more")
        job_rows(page, 60)
        expect(page.locator("#jobs-more")).to_be_hidden()
        next_status(page)  # a refresh that may have started before the click
        next_status(page)  # one that started after it

        # Then all 60 rows are still shown (and there is nothing more to load)
        assert page.locator("#jobs tbody tr").count() == 60
        assert page.is_hidden("#jobs-more")
        assert not page.locator("#status.error").count()


def test_the_console_shows_failed_clicks_and_ignores_answers_for_old_filters(system, tenant, page):
    with queued_jobs(system, tenant, 3) as job_ids:
        open_console(system, page, tenant)
        page.uncheck("#auto-refresh")  # this test says when the console refreshes
        show_jobs(page, tenant, "queued")
        job_rows(page, 3)

        # A click whose request fails shows why on the header's status line.
        page.route(
            f"**/jobs/{job_ids[0]}",
            lambda route: route.fulfill(
                status=503,
                content_type="application/json",
                body=json.dumps(
                    {"title": "Redis unavailable", "description": "The queue store is down."}
                ),
            ),
        )
        page.locator(f'#jobs tr[data-job-id="{job_ids[0]}"] [data-testid="job-link"]').click()
        page.wait_for_selector('#status.error:has-text("The queue store is down.")')
        assert page.is_hidden("#job-detail")
        page.unroute(f"**/jobs/{job_ids[0]}")

        # A refresh whose jobs request is answered only after the operator changed the
        # filters does not put back the rows of the old filters.
        held = []
        page.route(
            "**/jobs?*state=queued*",
            lambda route: held.append(route) if not held else route.continue_(),
        )
        page.click("#refresh")
        poll(lambda: page.evaluate("1") and held, message="the refresh's jobs request")
        page.select_option("#filter-state", "succeeded")
        job_rows(page, 0)
        clear_status(page)
        held[0].continue_()
        expect(page.locator("#status")).not_to_be_empty()  # the refresh ended
        assert page.locator("#jobs tbody tr").count() == 0
        assert page.locator("#filter-state").input_value() == "succeeded"


def test_an_operator_sees_every_tenant_and_an_admin_only_its_own(system, page):
    # Given waiting jobs of two tenants
    acme, globex = (f"t{uuid.uuid4().hex[:8]}" for _ in range(2))
    with queued_jobs(system, acme, 2) as acme_ids, queued_jobs(system, globex, 3) as globex_ids:
        # When an operator (platform staff, token of no customer tenant) opens the console
        open_console(system, page, "platform", roles=("operator",))
        page.uncheck("#auto-refresh")
        page.select_option("#filter-queue", IDLE_QUEUE)
        job_rows(page, 5)

        # Then both tenants' jobs are listed, with the tenant column, filter and the
        # queue figures across tenants; executions (tenant data) are not shown
        expect(page.locator("#scope")).to_have_text("all tenants")
        tenants = page.locator("#jobs tbody td.all-tenants").all_inner_texts()
        assert sorted(tenants) == sorted([acme] * 2 + [globex] * 3)
        expect(page.locator("#jobs th.all-tenants")).to_be_visible()
        expect(page.locator("#filter-tenant")).to_be_visible()
        queue = page.locator(f'#queues tr[data-queue="{IDLE_QUEUE}"]')
        expect(queue.locator("td").nth(1)).to_be_visible()  # ready
        assert int(queue.locator("td").nth(1).inner_text()) >= 5
        expect(page.locator("#executions-view")).to_be_hidden()
        expect(page.locator("#executions-note")).to_be_visible()

        # When acme's admin signs in instead
        page.click("#sign-out")
        open_console(system, page, acme)
        page.uncheck("#auto-refresh")
        page.select_option("#filter-queue", IDLE_QUEUE)

        # Then only acme's jobs are listed, without the tenant column, the tenant filter
        # or the figures across tenants; the queue row counts acme's own records
        job_rows(page, 2)
        expect(page.locator("#scope")).to_have_text(f"tenant {acme}")
        shown = page.locator("#jobs tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.jobId)"
        )
        assert sorted(shown) == sorted(acme_ids) and not set(shown) & set(globex_ids)
        expect(page.locator("#jobs th.all-tenants")).to_be_hidden()
        expect(page.locator("#filter-tenant")).to_be_hidden()
        expect(queue.locator("td").nth(1)).to_be_hidden()
        expect(queue.locator("td").nth(5)).to_have_text("2")  # queued: acme's two
        expect(page.locator("#executions-view")).to_be_visible()
        assert not page.locator("#status.error").count()


def test_the_console_shows_tree_state_and_names(system, tenant, page):
    # Given a write whose run job failed for good below its (succeeded) dispatch job
    policy, execution, failed_id, ops = dead_run_job(system, tenant)
    write_id = policy["jobs"][0]["id"]

    # When the tenant's admin lists the jobs whose work failed somewhere below
    page.goto(f"{system.workflow_url}/console")
    page.fill("#token", system.token(sub="op", roles=["admin"], tenant=tenant))
    page.click("#sign-in")
    page.wait_for_selector('#queues tr[data-queue="governance.policy"]')
    page.select_option("#filter-tree", "failed")

    # Then the write's job is listed: succeeded itself, failed below, naming the job
    row = page.locator(f'#jobs tr[data-job-id="{write_id}"]')
    expect(row).to_have_attribute("data-tree-state", "failed")
    expect(row).to_have_attribute("data-state", "succeeded")
    tree = row.locator('[data-testid="tree"]')
    expect(tree).to_contain_text(failed_id[:8])
    expect(tree).to_contain_text("RuntimeError")
    expect(row).to_contain_text("“Passwords”")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    page.locator("section:has(> #jobs)").screenshot(
        path=str(screenshot_dir() / "console-jobs-tree.png")
    )

    # And its detail links to the failed job, whose detail names workflow and policy
    row.locator('[data-testid="job-link"]').click()
    detail = page.locator("#job-detail")
    expect(detail).to_have_attribute("data-tree-state", "failed")
    detail.locator('[data-testid="tree-cause-job"]').click()
    expect(page.locator("#job-id")).to_have_text(failed_id)
    expect(page.locator("#job-fields")).to_contain_text("fragile · policy “Passwords”")
    # The executions table names the workflow and the policy too
    ex_row = page.locator(f'#executions tr[data-execution-id="{execution["id"]}"]')
    expect(ex_row).to_contain_text("fragile")
    expect(ex_row).to_contain_text("“Passwords”")
