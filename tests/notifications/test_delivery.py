"""One delivery attempt at a time: claims, outcomes, duplicates, and a vanished sender."""

from __future__ import annotations

import threading
from datetime import timedelta

import dramatiq
import pytest
from dramatiq import Worker

from shared.broker import actor_options, create_broker
from shared.db import utcnow
from shared.jobstatus import JobStatusStore
from shared.settings import CommonSettings
from tests.notifications.receivers import SmtpServer, WebhookReceiver
from tests.support import poll
from workflow_service.models import Notification
from workflow_service.notifications import delivery, secrets
from workflow_service.notifications.channels import PermanentDeliveryError, TransientDeliveryError
from workflow_service.notifications.models import Delivery
from workflow_service.settings import NotificationSettings

SECRET = "delivery-test-secret"


def settings(**overrides):
    return NotificationSettings(
        **{
            "webhook_secret": SECRET,
            "webhook_timeout_s": 2.0,
            "smtp_timeout_s": 2.0,
            "webhook_allow_private": True,  # the test receivers listen on 127.0.0.1
            **overrides,
        }
    )


def tenant_secret(tenant="acme"):
    """What the tenant's receivers hold: its current signing secret."""
    return secrets.signing_secrets(tenant, settings())[0]


def plan(execution, *items, step_key="1"):
    return delivery.plan(
        tenant_id="acme",
        execution_id=execution.id,
        step_key=step_key,
        entity_type="policy",
        entity_id="p-1",
        items=items,
    )


def webhook(url):
    return delivery.PlannedDelivery(
        recipient=url, channel="webhook", address=url, payload={"hello": "world"}
    )


def test_planning_twice_plans_once(execution):
    item = delivery.PlannedDelivery(recipient="olivia", channel="in_app", subject="Hi")
    first = plan(execution, item)
    again = plan(execution, item)
    assert len(first) == 1 and first == again
    assert Delivery.select().count() == 1


def test_in_app_is_written_with_the_sent_mark_and_only_once(execution):
    (delivery_id,) = plan(
        execution,
        delivery.PlannedDelivery(
            recipient="olivia", channel="in_app", subject="Approved", body="yes"
        ),
    )
    assert delivery.attempt(delivery_id, settings(), last_attempt=False) == "sent"
    # A duplicate message finds the delivery sent and does nothing
    assert delivery.attempt(delivery_id, settings(), last_attempt=False) == "sent"
    (note,) = Notification.select()
    assert (note.recipient, note.address, note.subject) == ("olivia", "user:olivia", "Approved")
    assert Delivery.get_by_id(delivery_id).attempts == 1


def test_concurrent_duplicates_send_once(execution):
    with WebhookReceiver(tenant_secret(), [200]) as receiver:
        (delivery_id,) = plan(execution, webhook(receiver.url))
        barrier = threading.Barrier(4)
        outcomes = []

        def attempt():
            barrier.wait()
            try:
                outcomes.append(delivery.attempt(delivery_id, settings(), last_attempt=False))
            except delivery.DeliveryBusy:
                outcomes.append("busy")

        threads = [threading.Thread(target=attempt) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        receiver.wait_for(1)
    assert len(receiver.requests) == 1
    assert outcomes.count("sent") >= 1 and set(outcomes) <= {"sent", "busy"}
    assert Delivery.get_by_id(delivery_id).attempts == 1


def test_transient_failure_releases_the_claim_and_the_last_one_fails(execution):
    with WebhookReceiver(tenant_secret(), [503]) as receiver:
        (delivery_id,) = plan(execution, webhook(receiver.url))
        with pytest.raises(TransientDeliveryError):
            delivery.attempt(delivery_id, settings(), last_attempt=False)
        row = Delivery.get_by_id(delivery_id)
        assert (row.status, row.response_status, row.claim_token) == ("pending", 503, None)
        with pytest.raises(TransientDeliveryError):
            delivery.attempt(delivery_id, settings(), last_attempt=True)
    row = Delivery.get_by_id(delivery_id)
    assert (row.status, row.attempts) == ("failed", 2)
    assert "503" in row.error


def test_permanent_failure_records_the_answer(execution):
    with WebhookReceiver(tenant_secret(), [404]) as receiver:
        (delivery_id,) = plan(execution, webhook(receiver.url))
        with pytest.raises(PermanentDeliveryError):
            delivery.attempt(delivery_id, settings(), last_attempt=False)
    row = Delivery.get_by_id(delivery_id)
    assert (row.status, row.response_status) == ("failed", 404)
    assert "scripted" in row.response
    # failed is final: a duplicate message sends nothing
    assert delivery.attempt(delivery_id, settings(), last_attempt=False) == "failed"
    assert len(receiver.requests) == 1


def test_a_vanished_senders_claim_is_taken_over_after_the_lease(execution):
    with SmtpServer() as smtp:
        config = settings(smtp_host="127.0.0.1", smtp_port=smtp.port)
        (delivery_id,) = plan(
            execution,
            delivery.PlannedDelivery(
                recipient="olivia",
                channel="email",
                address="olivia@example.org",
                subject="Approved",
                body="yes",
            ),
        )
        # Given: a worker claimed it and died
        now = utcnow()
        assert delivery.claim(delivery_id, config, now)
        # Then: nobody else sends it while the claim is fresh
        with pytest.raises(delivery.DeliveryBusy):
            delivery.attempt(delivery_id, config, last_attempt=False, clock=lambda: now)
        # ...and after the lease, it is claimed again and sent, with a stable Message-ID
        later = now + timedelta(seconds=config.claim_lease_s + 1)
        assert (
            delivery.attempt(delivery_id, config, last_attempt=False, clock=lambda: later) == "sent"
        )
        (mail,) = smtp.wait_for(lambda m: True)
    assert mail["Message-ID"] == f"<{delivery_id}@governance-workflows>"
    assert Delivery.get_by_id(delivery_id).attempts == 2


def test_email_without_an_address_fails_permanently(execution):
    (delivery_id,) = plan(
        execution,
        delivery.PlannedDelivery(recipient="ghost", channel="email", address=None, subject="s"),
    )
    with pytest.raises(PermanentDeliveryError, match="no e-mail"):
        delivery.attempt(delivery_id, settings(), last_attempt=False)


def test_unknown_delivery_is_reported_for_a_retry(workflow_db):
    with pytest.raises(delivery.DeliveryNotFound):
        delivery.attempt("00000000-0000-0000-0000-000000000000", settings(), last_attempt=False)


def test_delivery_jobs_carry_their_tenant_and_their_parent(execution, redis_url, namespace):
    # Given: the system's broker with job status, and two planned in-app deliveries
    broker = create_broker(CommonSettings(redis_url=redis_url, namespace=namespace))
    store = JobStatusStore(broker.client, namespace)
    first, second = plan(
        execution,
        delivery.PlannedDelivery(recipient="bob", channel="in_app"),
        delivery.PlannedDelivery(recipient="carol", channel="in_app"),
    )
    worker = None
    try:
        # When: one is sent outside any job (the approval web and the scheduler do that)
        [outside] = delivery.enqueue(broker, [first])
        # Then: its job record is the tenant's, so the api's /jobs/{id} shows it
        assert store.get(outside)["tenant_id"] == "acme"

        # When: the other is sent by a job of the tenant (a run_execution step)
        def run_step():
            broker.enqueue(delivery.delivery_message(second, "acme"))

        step = dramatiq.actor(
            run_step, broker=broker, actor_name="run_step", **actor_options("governance.policy")
        )
        parent = step.send_with_options(args=(), tenant_id="acme")
        worker = Worker(broker, queues={"governance.policy"}, worker_threads=1, worker_timeout=100)
        worker.start()
        # Then: it is the tenant's and a child of that job, listed in its children
        children = poll(
            lambda: store.get(parent.message_id)["children"]["items"],
            message="the delivery job among the run job's children",
        )
        assert [c["actor"] for c in children] == [delivery.DELIVER_ACTOR]
        record = store.get(children[0]["id"])
        assert record["tenant_id"] == "acme"
        assert record["parent"] == parent.message_id
    finally:
        if worker is not None:
            worker.stop()
        broker.close()
