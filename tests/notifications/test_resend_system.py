"""Retries that send: an operator's retry of a dead delivery job, and the re-send
schedule after a message's attempts, end to end (both services, a worker on the policy
and notification queues, the scheduler's housekeeping, webhook receivers here)."""

from __future__ import annotations

import uuid

import pytest

from tests.notifications.receivers import WebhookReceiver
from tests.support import poll
from tests.system import System

pytestmark = pytest.mark.e2e

NOTIFICATION_QUEUE = "governance.notification"
ATTEMPTS = 10  # the catalog's attempts of governance.notification
RESEND_AFTER_S = 2


@pytest.fixture(scope="module")
def system(tmp_path_factory, make_database_url, redis_url):
    env = {
        # 10 attempts 50 ms apart: a message is dead-lettered in about half a second
        "RETRY_DELAY_SCALE": "0.05",
        "WEBHOOK_SECRET": "resend-e2e-webhook-master-key",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",  # the receivers listen on 127.0.0.1
        "DELIVERY_RESEND_SCHEDULE": f"{RESEND_AFTER_S},{RESEND_AFTER_S}",
        # the scheduler's housekeeping runs every half second
        "EXECUTION_SWEEP_INTERVAL_SECONDS": "0.5",
    }
    with System.running(
        tmp_path_factory.mktemp("resend-system"),
        make_database_url,
        redis_url,
        env=env,
        workers=1,
        queues=["governance.policy", NOTIFICATION_QUEUE],
        scheduler=True,
    ) as running:
        yield running


@pytest.fixture
def tenant():
    return f"t{uuid.uuid4().hex[:8]}"


def editor(system, tenant):
    return system.workflow_client(sub="erin", roles=["editor"], tenant=tenant)


def admin(system, tenant):
    return system.workflow_client(sub="ada", roles=["admin"], tenant=tenant)


def signing_secret(system, tenant):
    """The tenant's signing secret, as its admin learns it: by a rotation."""
    rotated = admin(system, tenant).post("/webhook-secret/rotate")
    assert rotated.status_code == 201, rotated.text
    return rotated.json()["secret"]


def webhook_on_create(system, tenant, url):
    body = {
        "name": "hook",
        "entity_type": "policy",
        "trigger": "on_create",
        "status": "active",
        "steps": [{"kind": "webhook", "url": url}],
    }
    created = editor(system, tenant).post("/workflows", json=body)
    assert created.status_code == 201, created.text
    api = system.api_client(sub="alice", roles=["editor"], tenant=tenant)
    policy = api.post("/policies", json={"title": "Hooked", "policy_type": "security"})
    assert policy.status_code == 201, policy.text


def the_delivery(system, tenant, check=lambda d: True, message="the delivery", timeout=30):
    def find():
        items = editor(system, tenant).get("/deliveries").json()["items"]
        return len(items) == 1 and check(items[0]) and items[0]

    return poll(find, timeout=timeout, message=message)


def test_an_operators_retry_of_a_dead_delivery_job_sends_it_again(system, tenant):
    # Given: a webhook refused (404) once, its delivery failed and its job dead-lettered
    with WebhookReceiver(signing_secret(system, tenant), [404, 200]) as receiver:
        webhook_on_create(system, tenant, receiver.url)
        failed = the_delivery(system, tenant, lambda d: d["status"] == "failed")
        assert (failed["attempts"], failed["response_status"]) == (1, 404)
        ops = admin(system, tenant)

        def dead_job():
            items = ops.get("/jobs", params={"queue": NOTIFICATION_QUEUE, "state": "failed"})
            jobs = items.json()["items"]
            return jobs and ops.get(f"/jobs/{jobs[0]['id']}").json()["dead_lettered"] and jobs[0]

        job = poll(dead_job, timeout=20, message="the delivery job in the dead-letter queue")

        # When: the operator retries the dead job (the receiver now accepts)
        retried = ops.post(f"/jobs/{job['id']}/retry")
        assert retried.status_code == 202, retried.text

        # Then: the webhook is sent again, with the same delivery id
        requests = receiver.wait_for(2)
        sent = the_delivery(system, tenant, lambda d: d["status"] == "sent")
    assert {r.headers["X-Delivery-Id"] for r in requests} == {failed["id"]}
    assert all(r.signature_ok for r in requests)
    # ...the delivery's record shows the new attempt
    assert (sent["attempts"], sent["response_status"], sent["error"]) == (2, 200, None)
    assert sent["last_attempt_at"] > failed["last_attempt_at"]
    assert sent["next_resend_at"] is None
    # ...and the new job succeeded by sending it
    poll(
        lambda: ops.get(f"/jobs/{retried.json()['id']}").json()["state"] == "succeeded",
        message="the retried job to succeed",
    )


def test_a_receiver_down_longer_than_the_attempts_gets_the_webhook_once_back(system, tenant):
    # Given: a receiver down (503) for longer than a message's 10 attempts
    secret = signing_secret(system, tenant)
    with WebhookReceiver(secret, [503] * ATTEMPTS + [200]) as receiver:
        webhook_on_create(system, tenant, receiver.url)
        # Then: after the message's attempts the delivery is parked, not lost
        parked = the_delivery(
            system,
            tenant,
            lambda d: d["status"] == "failed" and d["next_resend_at"],
            message="the delivery parked for a re-send",
        )
        # (an attempt that ran before the planning transaction committed finds no row
        # to send, so a message makes at most, not always, 10 requests)
        assert 0 < parked["attempts"] <= ATTEMPTS and parked["resends"] == 0
        # ...and housekeeping sends it again once the receiver is back: exactly once
        sent = the_delivery(system, tenant, lambda d: d["status"] == "sent", timeout=30)
        requests = list(receiver.requests)
    assert (sent["resends"], sent["next_resend_at"]) == (1, None)
    # the receiver refused its first 10 requests and accepted the next: exactly one
    assert sent["attempts"] == len(requests) == ATTEMPTS + 1
    assert {r.headers["X-Delivery-Id"] for r in requests} == {sent["id"]}


def test_a_delivery_gives_up_after_the_schedule(system, tenant):
    # Given: a receiver down for good
    with WebhookReceiver(signing_secret(system, tenant), [503]) as receiver:
        webhook_on_create(system, tenant, receiver.url)
        # Then: the first message and both re-sends of the schedule fail, then it stops
        gave_up = the_delivery(
            system,
            tenant,
            lambda d: d["status"] == "failed" and d["resends"] == 2 and not d["next_resend_at"],
            message="the delivery given up after the schedule",
            timeout=60,
        )
        assert gave_up["attempts"] == len(receiver.requests) > 2 * ATTEMPTS
        assert gave_up["response_status"] == 503


def test_the_console_shows_a_parked_delivery_and_its_resend_time(system, tenant):
    from playwright.sync_api import sync_playwright

    from tests.jobs.test_console import CHROMIUM_ARGS, chromium_path

    executable = chromium_path()
    # Given: a receiver down for good; its delivery is parked between re-sends
    with WebhookReceiver(signing_secret(system, tenant), [503]) as receiver:
        webhook_on_create(system, tenant, receiver.url)
        parked = the_delivery(
            system, tenant, lambda d: d["next_resend_at"], message="the delivery parked"
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(30_000)
                # When: the tenant's admin opens the console, filtered to failed deliveries
                page.goto(f"{system.workflow_url}/console")
                page.fill("#token", system.token(sub="ada", roles=["admin"], tenant=tenant))
                page.click("#sign-in")
                page.select_option("#filter-delivery-status", "failed")
                # Then: the delivery is listed failed, with its attempts and the last error
                row = page.locator(f'#deliveries tr[data-delivery-id="{parked["id"]}"]')
                row.locator('[data-state="failed"]').wait_for()

                # The console redraws its tables as it refreshes: read a whole row.
                def whole_row():
                    texts = row.locator("td").all_inner_texts()
                    return texts if len(texts) > 8 else None

                cells = poll(whole_row, timeout=30, message="the delivery's row")
            finally:
                browser.close()
    assert cells[1] == "webhook" and cells[2] == receiver.url
    assert int(cells[4]) >= ATTEMPTS
    assert "503" in cells[8]
