"""The console's fleet panels in headless chromium against the running system: the
chart of a queue's last minutes, the worker processes and the scheduled workflows.

Screenshots of each go to ``CONSOLE_SCREENSHOT_DIR`` (a temporary directory when it is
not set), for the README.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.jobs import test_console
from tests.jobs.conftest import add_workflow, create_policy
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


def operator(system):
    return system.workflow_client(sub="op", roles=["operator"], tenant="ops")


def test_the_chart_shows_this_minutes_throughput(system, tenant, page, shots):
    ops = operator(system)

    def processed() -> int:
        [series] = ops.get("/stats", params={"queue": QUEUE, "minutes": 5}).json()["items"]
        return sum(series["processed"])

    before = processed()
    # Given three writes whose dispatch and run jobs ran on governance.policy
    add_workflow(system, tenant, [{"kind": "flaky", "fail_times": 0}])
    for _ in range(3):
        create_policy(system, tenant)
    system.wait_for_executions(3, tenant=tenant, status="completed", timeout=60)
    poll(lambda: processed() >= before + 6, message="the jobs counted in /stats")
    [series] = ops.get("/stats", params={"queue": QUEUE, "minutes": 5}).json()["items"]
    assert any(v is not None for v in series["duration_p50_ms"])
    assert any(v is not None for v in series["latency_p95_ms"])

    # When an operator opens the console
    sign_in(system, page)
    page.select_option("#stats-minutes", "60")
    chart = page.locator("#stats-throughput")
    page.wait_for_selector('#stats-throughput[data-drawn="true"] canvas')

    # Then the chart is drawn from the same figures: this hour's jobs include ours
    poll(
        lambda: int(chart.get_attribute("data-processed-total") or 0) >= before + 6,
        message="the chart's total",
    )
    assert chart.get_attribute("data-queue") == QUEUE
    assert "this minute: processed" in page.locator("#stats-summary").inner_text()
    assert page.locator("#stats-latency canvas").count() == 1
    page.locator("#stats-view").screenshot(path=str(shots / "console-over-time.png"))


def test_the_workers_panel_lists_the_running_worker(system, page, shots):
    ops = operator(system)
    live = poll(
        lambda: [w for w in ops.get("/workers").json()["items"] if w["state"] == "live"],
        message="a live worker in /workers",
    )
    worker = next(w for w in live if QUEUE in w["queues"])
    assert worker["threads"] >= 1 and worker["pid"] > 0 and worker["host"]
    assert worker["version"] and worker["in_flight"] >= 0

    sign_in(system, page)
    row = page.locator(f'#workers tr[data-worker="{worker["name"]}"]')
    row.wait_for()
    assert row.get_attribute("data-state") == "live"
    assert QUEUE in row.inner_text()
    page.locator("#workers-view").screenshot(path=str(shots / "console-workers.png"))


def test_the_schedules_panel_shows_next_fire_times_and_the_leader(system, tenant, page, shots):
    admin = system.workflow_client(sub="olga", roles=["admin"], tenant=tenant)
    body = {
        "name": "weekly review",
        "entity_type": "policy",
        "trigger": "scheduled",
        "trigger_config": {"cron": "0 9 * * 1", "entity_id": "p-7", "timezone": "Europe/Berlin"},
        "steps": [{"kind": "notify", "recipients": ["role:admin"], "subject": "weekly"}],
        "status": "active",
    }
    created = admin.post("/workflows", json=body)
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    scheduler = system.start_scheduler()
    try:
        ops = operator(system)
        leader = poll(lambda: ops.get("/schedules").json()["leader"], message="a scheduler leading")
        assert ":" in leader["holder"] and leader["pid"]
        mine = admin.get("/schedules").json()
        assert mine["leader"] is None and mine["tenant"] == tenant
        [item] = [s for s in mine["items"] if s["workflow_id"] == workflow_id]
        assert item["cron"] == "0 9 * * 1" and item["timezone"] == "Europe/Berlin"
        # Mondays 09:00 Berlin time: 07:00 or 08:00 UTC, a week apart
        times = item["next_fire_times"]
        assert len(times) == 3 and times[0][11:16] in ("07:00", "08:00")
        assert item["last_run"] is None

        sign_in(system, page)
        row = page.locator(f'#schedules tr[data-workflow-id="{workflow_id}"]')
        row.wait_for()
        assert row.locator('[data-testid="next-fire-times"]').inner_text().count("·") == 2
        page.wait_for_selector('#schedules-leader:has-text("Leader:")')
        page.locator("#schedules-view").screenshot(path=str(shots / "console-schedules.png"))
    finally:
        system.terminate(scheduler)
