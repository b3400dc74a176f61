"""After the message's attempts: parked deliveries, the re-send schedule, giving up, and
an operator's retry of a dead delivery job (the delivery is sent again, same id)."""

from __future__ import annotations

from datetime import datetime, timedelta

import dramatiq
import pytest

from shared.settings import ConfigError, Env
from tests.notifications.conftest import auth
from tests.notifications.receivers import WebhookReceiver
from tests.workflow.conftest import Outbox
from workflow_service.notifications import delivery, secrets
from workflow_service.notifications.channels import PermanentDeliveryError, TransientDeliveryError
from workflow_service.notifications.models import Delivery
from workflow_service.ops.reopen import reopen_for_retry
from workflow_service.settings import (
    DEFAULT_RESEND_SCHEDULE_S,
    NotificationSettings,
    parse_schedule,
)

#: Catalog attempts of governance.notification.
ATTEMPTS = 10
T0 = datetime(2026, 1, 5, 9, 0, 0)


def settings(**overrides):
    return NotificationSettings(
        **{
            "webhook_secret": "resend-test-secret",
            "webhook_timeout_s": 2.0,
            "webhook_allow_private": True,  # the test receivers listen on 127.0.0.1
            "resend_schedule_s": (60.0, 600.0),
            **overrides,
        }
    )


def tenant_secret():
    return secrets.signing_secrets("acme", settings())[0]


def plan_webhook(execution, url):
    (delivery_id,) = delivery.plan(
        tenant_id="acme",
        execution_id=execution.id,
        step_key="1",
        entity_type="policy",
        entity_id="p-1",
        items=[
            delivery.PlannedDelivery(
                recipient=url, channel="webhook", address=url, payload={"hello": "world"}
            )
        ],
    )
    return delivery_id


def one_message(delivery_id, config, at):
    """What one delivery message does: the catalog's attempts, one per second, until one
    is final. Returns the status, or the transient error the last attempt raised."""
    for n in range(ATTEMPTS):
        now = at + timedelta(seconds=n)
        try:
            return delivery.attempt(
                delivery_id, config, last_attempt=n == ATTEMPTS - 1, clock=lambda now=now: now
            )
        except TransientDeliveryError as exc:
            error = exc
    return error


def test_a_receiver_down_longer_than_the_attempts_gets_the_webhook_once_back(execution):
    config = settings()
    outbox = Outbox()
    # Given: a receiver that is down (503) for longer than one message's 10 attempts
    with WebhookReceiver(tenant_secret(), [503] * ATTEMPTS + [200]) as receiver:
        delivery_id = plan_webhook(execution, receiver.url)
        assert isinstance(one_message(delivery_id, config, T0), TransientDeliveryError)

        # Then: the delivery is parked, failed with the schedule's first re-send time
        row = Delivery.get_by_id(delivery_id)
        last = T0 + timedelta(seconds=ATTEMPTS - 1)
        assert (row.status, row.attempts, row.resends) == ("failed", ATTEMPTS, 0)
        assert row.next_resend_at == last + timedelta(seconds=60)
        assert row.last_attempt_at == last

        # When: housekeeping comes by before that time, nothing is sent
        assert delivery.resend_parked(outbox, now=last + timedelta(seconds=59)) == []
        # ...and at that time, one message goes out (a second housekeeper sends none)
        at = last + timedelta(seconds=60)
        assert delivery.resend_parked(outbox, now=at) == [delivery_id]
        assert delivery.resend_parked(outbox, now=at) == []
        [message] = outbox.messages
        assert (message.actor_name, message.args) == (delivery.DELIVER_ACTOR, (delivery_id,))
        assert message.options["tenant_id"] == "acme"

        # Then: the receiver is back, and the re-sent message delivers it once
        assert one_message(delivery_id, config, at) == "sent"
        assert one_message(delivery_id, config, at) == "sent"  # a duplicate sends nothing
        requests = receiver.wait_for(ATTEMPTS + 1)
    assert len(requests) == ATTEMPTS + 1
    assert {r.headers["X-Delivery-Id"] for r in requests} == {delivery_id}
    assert all(r.signature_ok for r in requests)
    row = Delivery.get_by_id(delivery_id)
    assert (row.status, row.attempts, row.resends, row.next_resend_at) == (
        "sent",
        ATTEMPTS + 1,
        1,
        None,
    )
    assert row.last_attempt_at == at


def test_a_delivery_gives_up_after_the_schedule(execution):
    config = settings()
    outbox = Outbox()
    with WebhookReceiver(tenant_secret(), [503]) as receiver:
        delivery_id = plan_webhook(execution, receiver.url)
        at = T0
        parked_for = []
        # Given: a receiver down for good; the first message and each re-send fail
        for _ in range(len(config.resend_schedule_s) + 1):
            one_message(delivery_id, config, at)
            row = Delivery.get_by_id(delivery_id)
            assert row.status == "failed"
            if row.next_resend_at is None:
                break
            parked_for.append((row.next_resend_at - row.last_attempt_at).total_seconds())
            at = row.next_resend_at
            assert delivery.resend_parked(outbox, now=at) == [delivery_id]
    # Then: it was re-sent after each pause of the schedule in turn, then given up
    assert parked_for == [60.0, 600.0]
    row = Delivery.get_by_id(delivery_id)
    assert (row.status, row.next_resend_at, row.resends) == ("failed", None, 2)
    assert row.attempts == 3 * ATTEMPTS == len(receiver.requests)
    assert delivery.resend_parked(outbox, now=at + timedelta(days=30)) == []
    assert len(outbox.messages) == 2


def test_a_permanent_failure_is_not_parked(execution):
    with WebhookReceiver(tenant_secret(), [404]) as receiver:
        delivery_id = plan_webhook(execution, receiver.url)
        with pytest.raises(PermanentDeliveryError):
            one_message(delivery_id, settings(), T0)
    row = Delivery.get_by_id(delivery_id)
    assert (row.status, row.next_resend_at, row.attempts) == ("failed", None, 1)


def test_an_operators_retry_reopens_the_delivery_and_can_be_undone(execution):
    with WebhookReceiver(tenant_secret(), [503] * ATTEMPTS + [200]) as receiver:
        delivery_id = plan_webhook(execution, receiver.url)
        one_message(delivery_id, settings(), T0)
        dead = delivery.delivery_message(delivery_id, "acme")
        parked = Delivery.get_by_id(delivery_id)
        assert parked.next_resend_at is not None

        # When: an operator retries the dead job and sending the new job fails
        undo = reopen_for_retry(dead, "new-job")
        assert Delivery.get_by_id(delivery_id).status == "pending"
        undo()
        # Then: the delivery is parked exactly as it was
        row = Delivery.get_by_id(delivery_id)
        assert (row.status, row.next_resend_at) == ("failed", parked.next_resend_at)

        # When: the retry's job is sent, the delivery is pending and its re-send time
        # gone (housekeeping will not send it a second time)
        assert reopen_for_retry(dead, "new-job") is not None
        row = Delivery.get_by_id(delivery_id)
        assert (row.status, row.next_resend_at) == ("pending", None)
        assert delivery.resend_parked(Outbox(), now=T0 + timedelta(days=1)) == []
        # ...and the new message sends it through the same delivery
        assert one_message(delivery_id, settings(), T0 + timedelta(minutes=5)) == "sent"
        requests = receiver.wait_for(ATTEMPTS + 1)
    assert {r.headers["X-Delivery-Id"] for r in requests} == {delivery_id}
    assert Delivery.get_by_id(delivery_id).attempts == ATTEMPTS + 1
    # A retry of a job whose delivery is sent reopens nothing
    assert reopen_for_retry(dead, "another-job") is None


def test_a_retry_of_another_actors_job_leaves_deliveries_alone(workflow_db):
    other = dramatiq.Message(
        queue_name="governance.notification",
        actor_name="something_else",
        args=("00000000-0000-0000-0000-000000000000",),
        kwargs={},
        options={},
    )
    assert reopen_for_retry(other, "new-job") is None


def test_deliveries_show_the_attempts_and_the_resend_time(make_web, execution):
    web = make_web()
    delivery_id = plan_webhook(execution, "http://127.0.0.1:9/hook")
    Delivery.update(
        status="failed",
        attempts=10,
        last_attempt_at=T0,
        next_resend_at=T0 + timedelta(minutes=1),
        resends=1,
    ).where(Delivery.id == delivery_id).execute()
    resp = web.simulate_get("/deliveries", headers=auth())
    assert resp.status_code == 200, resp.text
    [item] = resp.json["items"]
    assert item["id"] == delivery_id
    assert (item["status"], item["attempts"], item["resends"]) == ("failed", 10, 1)
    assert item["last_attempt_at"] == "2026-01-05T09:00:00Z"
    assert item["next_resend_at"] == "2026-01-05T09:01:00Z"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, DEFAULT_RESEND_SCHEDULE_S),
        ("", DEFAULT_RESEND_SCHEDULE_S),
        ("60,600,3600,21600", (60.0, 600.0, 3600.0, 21600.0)),
        (" 1, 2.5 ", (1.0, 2.5)),
        ("none", ()),
    ],
)
def test_the_schedule_is_read_from_the_environment(raw, expected):
    assert parse_schedule(raw) == expected
    env = Env({} if raw is None else {"DELIVERY_RESEND_SCHEDULE": raw})
    assert NotificationSettings.from_env(env).resend_schedule_s == expected


@pytest.mark.parametrize("raw", ["1,x", "-5", "60,,600", "inf", "nan"])
def test_an_unusable_schedule_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError, match="DELIVERY_RESEND_SCHEDULE"):
        parse_schedule(raw)


def test_migration_132_adds_the_resend_columns_to_an_older_schema(workflow_db, execution):
    from playhouse.migrate import SchemaMigrator, migrate

    from shared.db import migrate as run_migrations
    from workflow_service.migrations import all_migrations

    # Given: a database as it was before migration 132, with a delivery in it
    delivery_id = plan_webhook(execution, "http://127.0.0.1:9/hook")
    migrator = SchemaMigrator.from_database(workflow_db)
    migrate(
        migrator.drop_index("delivery", "delivery_next_resend_at"),
        migrator.drop_column("delivery", "last_attempt_at"),
        migrator.drop_column("delivery", "next_resend_at"),
        migrator.drop_column("delivery", "resends"),
    )
    workflow_db.execute_sql(
        "DELETE FROM schema_history WHERE service = 'workflow_service' AND version = 132"
    )
    # When: it is migrated, 132 runs alone and the delivery reads as never re-sent
    assert [m.version for m in run_migrations(workflow_db, all_migrations())] == [132]
    row = Delivery.get_by_id(delivery_id)
    assert (row.resends, row.next_resend_at, row.last_attempt_at) == (0, None, None)
    assert "delivery_next_resend_at" in {i.name for i in workflow_db.get_indexes("delivery")}
