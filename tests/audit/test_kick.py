"""Sending the chain builder: once per burst, again once a builder has started, and by
the scheduler's sweep for rows nobody kicked."""

from __future__ import annotations

import time
from datetime import timedelta

from shared.db import utcnow
from tests.audit.conftest import TENANT
from workflow_service.audit import jobs
from workflow_service.audit.kick import WorkerKick, kick, kick_key
from workflow_service.audit.models import AuditPending
from workflow_service.audit.record import record, take_touched


def note(source: str, tenant: str = TENANT) -> None:
    record(tenant, source, "task.created", actor="x", entity_type="task", entity_id="t")


def test_a_burst_sends_one_builder_until_one_starts(outbox, redis_client, namespace):
    assert kick(outbox, redis_client, namespace, [TENANT]) == 1
    assert kick(outbox, redis_client, namespace, [TENANT, "globex"]) == 1  # globex only
    assert sorted(m.args[0] for m in outbox.take("append_audit")) == [TENANT, "globex"]
    # A builder starting clears its tenant's key: the next write sends another
    redis_client.delete(kick_key(namespace, TENANT))
    assert kick(outbox, redis_client, namespace, [TENANT]) == 1


def test_a_broker_that_cannot_send_leaves_the_rows_to_the_sweep(outbox, redis_client, namespace):
    outbox.down = True
    assert kick(outbox, redis_client, namespace, [TENANT]) == 0
    # The key went with the failed send, so the sweep (or the next write) is not held off
    assert redis_client.get(kick_key(namespace, TENANT)) is None


def test_a_worker_kicks_after_a_message_that_recorded(workflow_db, outbox, redis_client, namespace):
    take_touched()
    middleware = WorkerKick(redis_client, namespace)
    note("task:1:created")
    middleware.after_process_message(outbox, None, result=None)
    assert [m.args for m in outbox.take("append_audit")] == [(TENANT,)]
    middleware.after_process_message(outbox, None, result=None)  # recorded nothing
    assert outbox.take("append_audit") == []


def test_the_sweep_sends_builders_for_rows_left_pending(
    workflow_db, outbox, redis_client, namespace
):
    note("task:old:created", tenant="acme")
    note("task:new:created", tenant="globex")
    AuditPending.update(created_at=utcnow() - timedelta(seconds=60)).where(
        AuditPending.tenant_id == "acme"
    ).execute()
    assert jobs.sweep(outbox, redis_client, namespace) == 1
    assert [m.args for m in outbox.take("append_audit")] == [("acme",)]


def test_a_worker_kicks_a_tenant_once_per_interval_and_sends_what_it_owes(
    workflow_db, outbox, redis_client, namespace
):
    take_touched()
    middleware = WorkerKick(redis_client, namespace, every_s=0.2)
    note("task:1:created")
    middleware.after_process_message(outbox, None, result=None)
    assert [m.args for m in outbox.take("append_audit")] == [(TENANT,)]
    # The builder starts (clears the key); a write right after is owed a kick, not lost
    redis_client.delete(kick_key(namespace, TENANT))
    note("task:2:created")
    middleware.after_process_message(outbox, None, result=None)
    note("task:3:created")
    middleware.after_process_message(outbox, None, result=None)
    assert outbox.take("append_audit") == []
    sent = []
    for _ in range(100):
        sent = outbox.take("append_audit")
        if sent:
            break
        time.sleep(0.05)
    assert [m.args for m in sent] == [(TENANT,)]
