"""Webhook signing secrets per tenant: made on first use, rotated by the tenant's admin,
shown once, the previous one accepted for a grace period, never stored in the clear."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from shared.db import utcnow
from tests.notifications.conftest import auth
from tests.notifications.receivers import WebhookReceiver
from workflow_service.models import Execution, Workflow
from workflow_service.notifications import delivery, secrets
from workflow_service.notifications.models import Delivery, WebhookSigningKey
from workflow_service.settings import NotificationSettings

MASTER = "master-key-of-the-notification-tests-0123456789"


def settings(**overrides) -> NotificationSettings:
    return NotificationSettings(
        **{
            "webhook_secret": MASTER,
            "webhook_timeout_s": 2.0,
            "webhook_allow_private": True,  # the test receivers listen on 127.0.0.1
            **overrides,
        }
    )


def execution_of(tenant: str) -> Execution:
    workflow = Workflow.create(
        tenant_id=tenant,
        name="w",
        entity_type="policy",
        trigger="manual",
        steps=[],
        created_by="t",
        updated_by="t",
    )
    return Execution.create(
        tenant_id=tenant,
        workflow=workflow,
        workflow_version=1,
        event_id=f"e-{tenant}",
        event={},
        entity_type="policy",
        entity_id="p-1",
        job_id=f"j-{tenant}",
    )


def send_webhook(execution: Execution, url: str, config: NotificationSettings) -> str:
    (delivery_id,) = delivery.plan(
        tenant_id=execution.tenant_id,
        execution_id=execution.id,
        step_key="1",
        entity_type="policy",
        entity_id="p-1",
        items=[
            delivery.PlannedDelivery(
                recipient=url, channel="webhook", address=url, payload={"n": 1}
            )
        ],
    )
    delivery.attempt(delivery_id, config, last_attempt=False)
    return delivery_id


def test_one_tenants_secret_cannot_verify_another_tenants_delivery(workflow_db):
    # Given: acme's receiver holds acme's secret
    acme, globex = execution_of("acme"), execution_of("globex")
    acme_secret = secrets.signing_secrets("acme", settings())[0]
    assert acme_secret != secrets.signing_secrets("globex", settings())[0]
    with WebhookReceiver(acme_secret, [200]) as receiver:
        # When: each tenant delivers to it
        send_webhook(acme, receiver.url, settings())
        send_webhook(globex, receiver.url, settings())
        first, second = receiver.wait_for(2)
    # Then: only acme's delivery verifies
    assert first.signature_ok, first.signature_error
    assert not second.signature_ok and "does not match" in second.signature_error


def test_the_first_use_makes_one_secret_and_keeps_it(workflow_db):
    first = secrets.signing_secrets("acme", settings())
    again = secrets.signing_secrets("acme", settings())
    assert first == again and len(first) == 1
    assert first[0].startswith("whsec_")
    assert WebhookSigningKey.select().where(WebhookSigningKey.tenant_id == "acme").count() == 1


def test_a_database_dump_alone_does_not_reveal_a_secret(workflow_db):
    (secret,) = secrets.signing_secrets("acme", settings())
    row = WebhookSigningKey.get(WebhookSigningKey.tenant_id == "acme")
    stored = " ".join(str(v) for v in row.__data__.values())
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    # The same rows under another master key give other secrets
    other = dataclasses.replace(settings(), webhook_secret="another-master-key-0123456789abcdef")
    assert secrets.signing_secrets("acme", other) != [secret]


def test_rotation_grace_signs_with_both_then_only_the_new(workflow_db):
    # Given: a tenant that rotated once (its receivers hold that secret)
    config = settings(webhook_secret_grace_s=3600)
    now = utcnow()
    old = secrets.rotate("acme", "ada", config, now=now).secret
    # When: it rotates again
    rotation = secrets.rotate("acme", "ada", config, now=now + timedelta(seconds=10))
    new = rotation.secret
    assert new != old
    assert rotation.previous_accepted_until == rotation.key.created_at + timedelta(seconds=3600)
    # Then: during the grace period deliveries are signed with both, newest first
    during = now + timedelta(minutes=30)
    assert secrets.signing_secrets("acme", config, now=during) == [new, old]
    # ...and after it with the new one only
    after = now + timedelta(seconds=10 + 3601)
    assert secrets.signing_secrets("acme", config, now=after) == [new]


def test_a_delivery_during_the_grace_period_verifies_with_either_secret(workflow_db):
    execution = execution_of("acme")
    config = settings(webhook_secret_grace_s=3600)
    old = secrets.rotate("acme", "ada", config).secret
    new = secrets.rotate("acme", "ada", config).secret
    with WebhookReceiver(old, [200]) as on_old, WebhookReceiver(new, [200]) as on_new:
        send_webhook(execution, on_old.url, config)
        (request,) = on_old.wait_for(1)
        assert request.signature_ok, request.signature_error
        assert request.headers["X-Signature"].count("sha256=") == 2
        execution2 = execution_of("acme")
        send_webhook(execution2, on_new.url, config)
        (request,) = on_new.wait_for(1)
        assert request.signature_ok, request.signature_error
    # With no grace period left, the old secret no longer verifies
    expired = dataclasses.replace(config, webhook_secret_grace_s=0)
    with WebhookReceiver(old, [200]) as on_old:
        send_webhook(execution_of("acme"), on_old.url, expired)
        (request,) = on_old.wait_for(1)
    assert not request.signature_ok
    assert Delivery.select().where(Delivery.status == "sent").count() == 3


def test_rotation_keeps_only_the_generations_that_still_sign(workflow_db):
    for _ in range(4):
        secrets.rotate("acme", "ada", settings())
    generations = sorted(
        k.generation
        for k in WebhookSigningKey.select().where(WebhookSigningKey.tenant_id == "acme")
    )
    assert generations == [3, 4]


# ----------------------------------------------------------------------------- routes


def test_the_admin_rotates_and_sees_the_secret_once(make_web):
    web = make_web()
    admin = auth("ada", ("admin",))
    # Before any secret: metadata says so
    resp = web.simulate_get("/webhook-secret", headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.json["current"] is None and resp.json["previous"] is None
    # Rotating shows the new secret, once
    rotated = web.simulate_post("/webhook-secret/rotate", headers=admin)
    assert rotated.status_code == 201, rotated.text
    assert rotated.headers["Cache-Control"] == "no-store"
    secret = rotated.json["secret"]
    assert secret == secrets.signing_secrets("acme", web.app_settings)[0]
    assert rotated.json["generation"] == 1 and rotated.json["previous_accepted_until"] is None
    # Reading shows metadata only
    shown = web.simulate_get("/webhook-secret", headers=admin)
    assert secret not in shown.text and "secret" not in shown.json
    assert shown.json["current"]["generation"] == 1
    assert shown.json["current"]["created_by"] == "ada"
    # A second rotation names how long the first one still signs
    again = web.simulate_post("/webhook-secret/rotate", headers=admin)
    assert again.json["secret"] != secret and again.json["previous_accepted_until"]
    shown = web.simulate_get("/webhook-secret", headers=admin).json
    assert shown["previous"]["generation"] == 1
    assert shown["previous"]["accepted_until"] == again.json["previous_accepted_until"]


@pytest.mark.parametrize("roles", [("editor",), ("viewer",), ("approver",), ("operator",)])
def test_only_the_tenants_admin_reads_or_rotates_its_secret(make_web, roles):
    web = make_web()
    assert web.simulate_get("/webhook-secret", headers=auth(roles=roles)).status_code == 403
    resp = web.simulate_post("/webhook-secret/rotate", headers=auth(roles=roles))
    assert resp.status_code == 403
    assert resp.json["title"] and resp.json["description"]
    assert WebhookSigningKey.select().count() == 0
    assert web.simulate_get("/webhook-secret").status_code == 401


def test_an_admin_rotates_only_its_own_tenants_secret(make_web):
    web = make_web()
    acme = secrets.signing_secrets("acme", web.app_settings)
    resp = web.simulate_post("/webhook-secret/rotate", headers=auth("gus", ("admin",), "globex"))
    assert resp.status_code == 201
    assert secrets.signing_secrets("acme", web.app_settings) == acme
    listed = web.simulate_get("/webhook-secret", headers=auth("ada", ("admin",))).json
    assert listed["tenant_id"] == "acme" and listed["current"]["generation"] == 1
    assert listed["current"]["created_by"] is None  # made by first use, not by globex


def test_migration_131_adds_the_signing_keys_to_an_older_schema(workflow_db):
    from shared.db import migrate
    from workflow_service.migrations import all_migrations

    # Given: a database as it was before migration 131
    workflow_db.execute_sql("DROP TABLE webhook_signing_key")
    workflow_db.execute_sql(
        "DELETE FROM schema_history WHERE service = 'workflow_service' AND version = 131"
    )
    # When: it is migrated, 131 runs alone and secrets work again
    assert [m.version for m in migrate(workflow_db, all_migrations())] == [131]
    assert secrets.signing_secrets("acme", settings())
