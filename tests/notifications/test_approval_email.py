"""The e-mail asking an approver for a decision names the entity, the requester, the
version asked for and how to decide; sent through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from tests.notifications.receivers import SmtpServer
from workflow_service.approvals import service
from workflow_service.approvals.service import Stage
from workflow_service.models import Execution, Workflow
from workflow_service.notifications import delivery
from workflow_service.settings import NotificationSettings
from workflow_service.users import directory


def approval_execution(title="Access control"):
    workflow = Workflow.create(
        tenant_id="acme",
        name="Policy approval",
        entity_type="policy",
        trigger="on_status_change",
        steps=[],
        created_by="t",
        updated_by="t",
    )
    return Execution.create(
        tenant_id="acme",
        workflow=workflow,
        workflow_version=1,
        event_id="e-approval",
        event={
            "event_type": "policy.status_changed",
            "entity_id": "p-42",
            "data": {"title": title, "status": "in_review", "version": 3, "owner": "olivia"},
        },
        entity_type="policy",
        entity_id="p-42",
        job_id="j-1",
    )


def test_the_approval_email_names_entity_requester_version_and_how_to_decide(workflow_db):
    # Given: an approver with an address, and a policy olivia sent to review at version 3
    directory.save_user("acme", "alice", name="Alice Archer", email="alice@example.org",
                        roles=["approver"])  # fmt: skip
    directory.save_user("acme", "olivia", name="Olivia Owens", roles=["editor"])
    execution = approval_execution("Access\ncontrol")  # a line break stays out of the lines
    with SmtpServer() as smtp:
        config = NotificationSettings(
            webhook_secret="approval-email-test-secret",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_from="governance@example.org",
            smtp_timeout_s=2.0,
        )
        # When: the approval is requested by e-mail and the delivery is sent
        request, deliveries = service.open_request(
            execution=execution,
            step_key="0",
            title='Approve policy "Access control" (version 3)',
            stages=[Stage(("user:alice",))],
            owner="olivia",
            initiator="olivia",
            entity_version=3,
            allow_self_approval=False,
            due_in_s=None,
            escalate_to=[],
            notify_channels=("email", "in_app"),
        )
        assert len(deliveries) == 1
        assert delivery.attempt(deliveries[0], config, last_attempt=False) == "sent"
        (mail,) = smtp.wait_for(lambda m: m["To"] == "alice@example.org")

    # Then: the mail says what, which version, who asked, and how to decide
    assert mail["Subject"] == 'Approval requested: Approve policy "Access control" (version 3)'
    text = mail.get_body(("plain",)).get_content()
    lines = [line.strip() for line in text.splitlines()]
    assert "Policy: Access control" in lines
    assert "Policy id: p-42" in lines
    assert "Version to decide: 3" in lines
    assert "Requested by: Olivia Owens (olivia)" in lines
    assert "Workflow: Policy approval" in lines
    assert f"Approval id: {request.id}" in lines
    assert f"POST /approvals/{request.id}/decision" in lines
    assert '{"decision": "approve"' in text and '{"decision": "reject"' in text
    assert lines[0].startswith("Olivia Owens (olivia) asks for your decision")
    # ...and the in-app note says the same
    (note,) = service.Notification.select().where(service.Notification.recipient == "alice")
    assert note.body.splitlines() == text.rstrip().splitlines()


def test_without_a_requester_or_version_the_email_says_so(workflow_db):
    directory.save_user("acme", "alice", email="alice@example.org", roles=["approver"])
    execution = approval_execution()
    with SmtpServer() as smtp:
        config = NotificationSettings(
            webhook_secret="approval-email-test-secret",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_timeout_s=2.0,
        )
        _, deliveries = service.open_request(
            execution=execution,
            step_key="0",
            title="Please approve",
            stages=[Stage(("user:alice",)), Stage(("user:alice",))],
            owner=None,
            initiator=None,
            entity_version=None,
            allow_self_approval=True,
            due_in_s=None,
            escalate_to=[],
            notify_channels=("email",),
        )
        delivery.attempt(deliveries[0], config, last_attempt=False)
        (mail,) = smtp.wait_for(lambda m: True)
    lines = [line.strip() for line in mail.get_body(("plain",)).get_content().splitlines()]
    assert lines[0] == "A workflow asks for your decision (stage 1 of 2): Please approve"
    assert "Policy: Access control" in lines
    assert "Version to decide: not recorded" in lines
