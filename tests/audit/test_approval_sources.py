"""Approvals and deliveries in the audit log: the request, a refused decision, the
decision, and the notice it sends."""

from __future__ import annotations

import contextlib

from tests.approvals.test_decisions import approval_step, decide, run_pending, start
from tests.audit.conftest import TENANT, auth, chain_all
from workflow_service.approvals import reassign
from workflow_service.approvals.models import ApprovalRequest
from workflow_service.audit import chain
from workflow_service.audit.models import AuditEntry
from workflow_service.db import database
from workflow_service.notifications import delivery
from workflow_service.notifications.channels import TransientDeliveryError
from workflow_service.users.directory import save_user


def entries(action: str) -> list[AuditEntry]:
    return list(
        AuditEntry.select()
        .where((AuditEntry.tenant_id == TENANT) & (AuditEntry.action == action))
        .order_by(AuditEntry.seq)
    )


def test_an_approval_its_refusal_its_decision_and_the_notice_are_recorded(
    client, engine, outbox, settings
):
    with database.connection_context():
        save_user(TENANT, "olivia", roles=["editor"], email="olivia@example.org")
        save_user(TENANT, "alice", roles=["approver"], email="alice@example.org")
        save_user(TENANT, "bob", roles=["approver"], email="bob@example.org")
    step = approval_step(approvers=["alice"], mode="any")
    execution_id = start(client, engine, outbox, step)
    approval = ApprovalRequest.get(ApprovalRequest.execution == execution_id)

    refused = decide(client, approval.id, "bob", roles=["approver"])
    assert refused.status_code == 403, refused.text
    approved = decide(client, approval.id, "alice", comment="fine", roles=["approver"])
    assert approved.status_code == 200, approved.text
    run_pending(engine, outbox)
    for message in outbox.take(delivery.DELIVER_ACTOR):
        # No mail server here: an e-mail's last attempt fails and is parked for a re-send
        with contextlib.suppress(TransientDeliveryError):
            delivery.attempt(message.args[0], settings.notifications, last_attempt=True)
    chain_all()

    [requested] = entries("approval.requested")
    assert requested.entity_id == str(approval.id) and requested.actor == "system"
    [refusal] = entries("approval.refused")
    assert refusal.actor == "bob" and refusal.digest["decision"] == "approve"
    [decision] = entries("approval.decided")
    assert decision.actor == "alice"
    assert decision.digest["decision"] == "approved" and decision.digest["comment"] == "fine"
    assert decision.digest["outcome"] == "approved"
    # The e-mail asking alice to decide (in-app notices are inbox rows, not deliveries)
    [parked] = entries("delivery.parked")
    assert parked.digest["channel"] == "email" and parked.digest["recipient"] == "alice"
    assert entries("execution.completed")
    assert chain.verify(TENANT)["intact"] is True


def test_a_reassignment_that_settles_an_approval_is_recorded(client, engine, outbox):
    with database.connection_context():
        save_user(TENANT, "olivia", roles=["editor"])
        save_user(TENANT, "alice", roles=["approver"])
        save_user(TENANT, "bob", roles=["approver"])
    step = approval_step(approvers=["alice", "bob"], mode="all")
    execution_id = start(client, engine, outbox, step)
    approval = ApprovalRequest.get(ApprovalRequest.execution == execution_id)
    assert decide(client, approval.id, "alice", roles=["approver"]).status_code == 200
    # bob leaves the directory: the stage is decided by those left (alice), no person acts
    with database.connection_context():
        save_user(TENANT, "bob", roles=["approver"], active=False)
        assert reassign.reassign_departed(outbox, engine.resume) == [approval.id]
    assert ApprovalRequest.get_by_id(approval.id).status == "approved"
    chain_all()

    [reassigned] = entries("approval.reassigned")
    assert reassigned.entity_id == str(approval.id) and reassigned.actor == "system"
    assert reassigned.digest["departed"] == ["bob"] and reassigned.digest["added"] == []
    assert reassigned.digest["outcome"] == "approved"
    assert chain.verify(TENANT)["intact"] is True


def test_an_approval_closed_by_its_cancelled_execution_is_recorded(client, engine, outbox):
    with database.connection_context():
        save_user(TENANT, "olivia", roles=["editor"])
        save_user(TENANT, "alice", roles=["approver"])
    execution_id = start(client, engine, outbox, approval_step(approvers=["alice"]))
    approval = ApprovalRequest.get(ApprovalRequest.execution == execution_id)
    cancelled = client.simulate_post(
        f"/executions/{execution_id}/cancel", headers=auth("olivia", ["editor"])
    )
    assert cancelled.status_code == 200, cancelled.text
    assert ApprovalRequest.get_by_id(approval.id).status == "cancelled"
    chain_all()

    [closed] = entries("approval.closed")
    assert closed.entity_id == str(approval.id)
    assert closed.digest["reason"] == "its execution ended"
    assert entries("execution.cancelled")[0].actor == "olivia"
    assert chain.verify(TENANT)["intact"] is True
