"""Approvals and notifications end to end: both services, real workers, real Redis.

The api and the workflow web run under gunicorn, a Dramatiq worker consumes the policy
and notification queues, an SMTP server (aiosmtpd) and webhook receivers run in this
process, and the directory is loaded with ``python -m workflow_service users import``.
Each test works in a tenant of its own, so the workflows of one never see another's
policies.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import yaml

from tests.notifications.receivers import SmtpServer, WebhookReceiver
from tests.support import ROOT, poll
from tests.system import System

pytestmark = pytest.mark.e2e

WEBHOOK_SECRET = "e2e-webhook-secret"  # master key: tenants' signing secrets derive from it
TENANTS = (
    "approve",
    "reject",
    "self",
    "self-chain",
    "self-manual",
    "stages",
    "quorum",
    "race",
    "overdue",
    "hook-flaky",
    "hook-400",
    "edit-review",
    "delete-review",
)
PEOPLE = {
    "olivia": ["editor", "approver"],
    "alice": ["approver"],
    "bob": ["approver"],
    "carol": ["approver"],
}


@pytest.fixture(scope="module")
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def system(tmp_path_factory, make_database_url, redis_url, smtp):
    log_dir = tmp_path_factory.mktemp("approvals-system")
    env = {
        "RETRY_DELAY_SCALE": "0.05",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_FROM": "governance@example.org",
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",  # the test receiver is on 127.0.0.1
        # the scheduler's housekeeping (overdue approvals) runs every second
        "EXECUTION_SWEEP_INTERVAL_SECONDS": "1",
    }
    with System.running(
        log_dir,
        make_database_url,
        redis_url,
        env=env,
        workers=1,
        queues=["governance.policy", "governance.notification"],
    ) as running:
        users = [
            {
                "id": user,
                "name": user.title(),
                "email": f"{user}@{tenant}.example.org",
                "roles": roles,
                "tenant": tenant,
            }
            for tenant in TENANTS
            for user, roles in PEOPLE.items()
        ]
        users_file = log_dir / "users.yaml"
        users_file.write_text(yaml.safe_dump({"users": users}))
        imported = subprocess.run(
            [sys.executable, "-m", "workflow_service", "users", "import", str(users_file)],
            env={**running.env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert imported.returncode == 0, imported.stdout + imported.stderr
        assert f"imported {len(users)} users" in imported.stdout
        yield running


def as_user(system, tenant, sub, roles=None, service="workflow"):
    roles = roles or PEOPLE[sub]
    make = system.workflow_client if service == "workflow" else system.api_client
    return make(sub=sub, roles=roles, tenant=tenant)


def new_policy(system, tenant, title="Access control"):
    api = as_user(system, tenant, "olivia", service="api")
    created = api.post("/policies", json={"title": title, "policy_type": "security"})
    assert created.status_code == 201, created.text
    return created.json()


def to_review(system, tenant, policy):
    api = as_user(system, tenant, "olivia", service="api")
    moved = api.post(f"/policies/{policy['id']}/transitions", json={"to": "in_review"})
    assert moved.status_code == 200, moved.text


def pending_approval(system, tenant, user, policy):
    client = as_user(system, tenant, user)

    def find():
        items = client.get("/approvals", params={"status": "pending"}).json()["items"]
        return [a for a in items if a["entity_id"] == policy["id"]]

    return poll(find, timeout=20, message=f"{user}'s pending approval")[0]


def policy_status(system, tenant, policy, status):
    api = as_user(system, tenant, "olivia", service="api")
    return poll(
        lambda: api.get(f"/policies/{policy['id']}").json()["status"] == status,
        timeout=20,
        message=f"policy {status}",
    )


def inbox(system, tenant, user, subject_start):
    client = as_user(system, tenant, user)

    def find():
        items = client.get("/notifications").json()["items"]
        return [n for n in items if n["subject"].startswith(subject_start)]

    return poll(find, timeout=20, message=f"{user}'s notification {subject_start!r}")


def create_workflow(system, tenant, steps, conditions=None, trigger="on_status_change"):
    body = {
        "name": "custom",
        "entity_type": "policy",
        "trigger": trigger,
        "status": "active",
        "conditions": conditions
        if conditions is not None
        else [{"field": "status", "op": "eq", "value": "in_review"}],
        "steps": steps,
    }
    created = as_user(system, tenant, "olivia").post("/workflows", json=body)
    assert created.status_code == 201, created.text
    return created.json()


def from_template(system, tenant):
    created = as_user(system, tenant, "olivia").post("/workflows/from-template/policy-approval")
    assert created.status_code == 201, created.text
    return created.json()


def decide(system, tenant, user, approval, decision="approve", comment=None, roles=None):
    return as_user(system, tenant, user, roles).post(
        f"/approvals/{approval['id']}/decision",
        json={"decision": decision, **({"comment": comment} if comment else {})},
    )


# ------------------------------------------------------------------------- templates


def approval_closed(system, tenant, user, approval, why):
    client = as_user(system, tenant, user)

    def closed():
        detail = client.get(f"/approvals/{approval['id']}").json()
        return detail["status"] == "cancelled" and why in (detail["closed_reason"] or "") and detail

    return poll(closed, timeout=20, message=f"approval closed ({why})")


def test_a_policy_in_review_is_edited_only_through_a_new_review(system):
    # Given: olivia's policy in review (version 2), bob's approval asked for it
    tenant = "edit-review"
    from_template(system, tenant)
    policy = new_policy(system, tenant, "Access control")
    to_review(system, tenant, policy)
    first = pending_approval(system, tenant, "bob", policy)
    assert (first["entity_version"], first["entity_status"]) == (2, "in_review")
    api = as_user(system, tenant, "olivia", service="api")
    path = f"/policies/{policy['id']}"
    # When: she edits it in review
    edited = api.patch(path, json={"content": "new text", "version": 2})
    # Then: refused, naming the review
    assert edited.status_code == 409, edited.text
    assert "withdraw it to draft first" in edited.json()["description"]
    # Withdrawn to draft, the approval asked for version 2 closes and its run stops
    moved = api.post(f"{path}/transitions", json={"to": "draft"})
    assert moved.status_code == 200, moved.text
    approval_closed(system, tenant, "bob", first, "stale")
    system.wait_for_executions(1, tenant=tenant, status="cancelled")
    stale = decide(system, tenant, "bob", first)
    assert stale.status_code == 409, stale.text
    # Edited and sent again, it gets a new approval for the new version
    assert api.patch(path, json={"content": "new text", "version": 3}).status_code == 200
    to_review(system, tenant, policy)
    second = pending_approval(system, tenant, "bob", policy)
    assert second["id"] != first["id"] and second["entity_version"] == 5
    answer = as_user(system, tenant, "bob").post(
        f"/approvals/{second['id']}/decision", json={"decision": "approve", "version": 5}
    )
    assert answer.status_code == 200 and answer.json()["outcome"] == "approved", answer.text
    policy_status(system, tenant, policy, "approved")
    # and the history names bob as who approved it, through the workflow service
    last = api.get(f"{path}/versions").json()["items"][-1]
    assert last["snapshot"]["status"] == "approved"
    assert (last["changed_by"], last["via"]) == ("bob", "workflow-service")


def test_deleting_a_policy_in_review_closes_its_approval(system):
    tenant = "delete-review"
    from_template(system, tenant)
    policy = new_policy(system, tenant, "Retention")
    to_review(system, tenant, policy)
    approval = pending_approval(system, tenant, "alice", policy)
    # When: the policy is deleted
    api = as_user(system, tenant, "olivia", service="api")
    assert api.delete(f"/policies/{policy['id']}").status_code == 200
    # Then: its approval closes saying why, its execution stops, nobody can decide it
    approval_closed(system, tenant, "alice", approval, "was deleted")
    (execution,) = system.wait_for_executions(1, tenant=tenant, status="cancelled")
    assert "deleted" in system.execution(execution["id"], tenant=tenant)["error"]
    answer = decide(system, tenant, "alice", approval)
    assert answer.status_code == 409 and "deleted" in answer.json()["description"]
    assert (
        as_user(system, tenant, "alice")
        .get("/approvals", params={"status": "pending"})
        .json()["items"]
        == []
    )


def test_policy_approval_template_approve(system, smtp):
    tenant = "approve"
    from_template(system, tenant)
    policy = new_policy(system, tenant, "Access control")
    to_review(system, tenant, policy)
    # The approver sees the approval and approves it
    approval = pending_approval(system, tenant, "alice", policy)
    assert approval["title"] == 'Approve policy "Access control" (version 2)'
    (request_mail,) = smtp.wait_for(lambda m: m["To"] == f"alice@{tenant}.example.org")
    assert (
        request_mail["Subject"] == 'Approval requested: Approve policy "Access control" (version 2)'
    )
    assert approval["id"] in request_mail.get_body(("plain",)).get_content()
    answer = decide(system, tenant, "alice", approval, comment="Clear and complete")
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "approved"
    # The policy becomes approved; the owner hears of it in-app and by e-mail
    policy_status(system, tenant, policy, "approved")
    (note,) = inbox(system, tenant, "olivia", "Policy approved")
    assert note["subject"] == "Policy approved: Access control"
    assert "alice: Clear and complete" in note["body"]
    (mail,) = smtp.wait_for(lambda m: m["To"] == f"olivia@{tenant}.example.org")
    assert mail["Subject"] == "Policy approved: Access control"
    assert mail["From"] == "governance@example.org"
    assert "Clear and complete" in mail.get_body(("plain",)).get_content()
    # The decision is on record with the version the approver saw
    detail = as_user(system, tenant, "alice").get(f"/approvals/{approval['id']}").json()
    (decision,) = [d for d in detail["decisions"] if d["approver"] == "alice"]
    assert decision["status"] == "approved" and decision["entity_version"] == 2
    executions = system.wait_for_executions(1, tenant=tenant, status="completed")
    steps = system.execution(executions[0]["id"], tenant=tenant)["steps"]
    assert [(s["key"], s["status"]) for s in steps] == [
        ("0", "waiting"),
        ("0", "completed"),
        ("0.0", "completed"),
        ("0.1", "completed"),
    ]


def test_policy_approval_template_reject(system, smtp):
    tenant = "reject"
    from_template(system, tenant)
    policy = new_policy(system, tenant, "Data retention")
    to_review(system, tenant, policy)
    approval = pending_approval(system, tenant, "bob", policy)
    answer = decide(system, tenant, "bob", approval, "reject", "Section 4 needs retention periods")
    assert answer.json()["outcome"] == "rejected"
    policy_status(system, tenant, policy, "draft")
    (note,) = inbox(system, tenant, "olivia", "Changes requested")
    assert "bob: Section 4 needs retention periods" in note["body"]
    (mail,) = smtp.wait_for(lambda m: m["To"] == f"olivia@{tenant}.example.org")
    assert mail["Subject"] == "Changes requested: Data retention"
    assert "Section 4 needs retention periods" in mail.get_body(("plain",)).get_content()
    # The other approvers' pending approvals went away with the decision
    assert (
        as_user(system, tenant, "alice")
        .get("/approvals", params={"status": "pending"})
        .json()["items"]
        == []
    )


def test_self_approval_is_refused(system):
    tenant = "self"
    from_template(system, tenant)
    policy = new_policy(system, tenant)
    to_review(system, tenant, policy)
    approval = pending_approval(system, tenant, "carol", policy)
    # olivia is an approver, but she owns the policy and sent it to review
    refused = decide(system, tenant, "olivia", approval)
    assert refused.status_code == 403
    assert refused.json()["title"] == "Self-approval refused"
    assert decide(system, tenant, "carol", approval).json()["outcome"] == "approved"
    policy_status(system, tenant, policy, "approved")


def test_self_approval_is_refused_when_a_workflow_made_the_change(system):
    # A workflow sends olivia's new policy (owned by dave) to review for her: the
    # change is the workflow service's, but she started it, so she may not approve.
    tenant = "self-chain"
    from_template(system, tenant)
    create_workflow(
        system,
        tenant,
        [{"kind": "change_status", "to": "in_review"}],
        conditions=[],
        trigger="on_create",
    )
    api = as_user(system, tenant, "olivia", service="api")
    created = api.post("/policies", json={"title": "Chained", "policy_type": "x", "owner": "dave"})
    assert created.status_code == 201, created.text
    policy = created.json()
    approval = pending_approval(system, tenant, "carol", policy)
    assert approval["initiator"] == "olivia"
    refused = decide(system, tenant, "olivia", approval)
    assert refused.status_code == 403
    assert refused.json()["title"] == "Self-approval refused"
    assert decide(system, tenant, "carol", approval).json()["outcome"] == "approved"
    policy_status(system, tenant, policy, "approved")


def test_reproduction_2_no_self_approval_through_a_manual_workflow(system):
    tenant = "self-manual"
    policy = new_policy(system, tenant)
    to_review(system, tenant, policy)
    olivia = as_user(system, tenant, "olivia", roles=["editor"])
    api = as_user(system, tenant, "olivia", roles=["editor"], service="api")
    # Given: olivia (editor) may not approve her policy directly
    direct = api.post(f"/policies/{policy['id']}/transitions", json={"to": "approved"})
    assert direct.status_code == 403, direct.text
    # When: she writes a manual workflow that lets her approve it herself
    step = {
        "kind": "require_approval",
        "approvers": ["user:olivia", "user:carol"],
        "allow_self_approval": True,
        "on_approve": APPROVE,
    }
    body = {
        "name": "mine",
        "entity_type": "policy",
        "trigger": "manual",
        "status": "active",
        "steps": [step],
    }
    refused = olivia.post("/workflows", json=body)
    # Then: only an admin may set allow_self_approval
    assert refused.status_code == 403 and "allow_self_approval" in refused.text
    # and when an admin did, running it (claiming someone else wrote the policy) does
    # not let her decide it: she is its initiator, and the api knows who wrote it
    created = as_user(system, tenant, "root", roles=["admin"]).post("/workflows", json=body)
    assert created.status_code == 201, created.text
    run = olivia.post(
        f"/workflows/{created.json()['id']}/run",
        json={"entity_id": policy["id"], "data": {"owner": "bob", "created_by": "bob"}},
    )
    assert run.status_code == 202, run.text
    approval = pending_approval(system, tenant, "carol", policy)
    mine = decide(system, tenant, "olivia", approval)
    assert mine.status_code == 403 and mine.json()["title"] == "Self-approval refused"
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "in_review"
    # carol approves; the api is told so and accepts her
    assert decide(system, tenant, "carol", approval).json()["outcome"] == "approved"
    policy_status(system, tenant, policy, "approved")


# ------------------------------------------------------------------ stages and quorum

APPROVE = [{"kind": "change_status", "to": "approved"}]


def test_sequential_two_stage_approval(system):
    tenant = "stages"
    create_workflow(
        system,
        tenant,
        [
            {
                "kind": "require_approval",
                "stages": [{"approvers": ["user:alice"]}, {"approvers": ["user:bob"]}],
                "on_approve": APPROVE,
            }
        ],
    )
    policy = new_policy(system, tenant)
    to_review(system, tenant, policy)
    approval = pending_approval(system, tenant, "alice", policy)
    assert decide(system, tenant, "bob", approval).status_code == 403  # not yet his turn
    first = decide(system, tenant, "alice", approval)
    assert first.json()["outcome"] is None and first.json()["stage"] == 2
    approval = pending_approval(system, tenant, "bob", policy)
    api = as_user(system, tenant, "olivia", service="api")
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "in_review"
    assert decide(system, tenant, "bob", approval).json()["outcome"] == "approved"
    policy_status(system, tenant, policy, "approved")


def test_quorum_two_of_three(system):
    tenant = "quorum"
    create_workflow(
        system,
        tenant,
        [
            {
                "kind": "require_approval",
                "approvers": ["user:alice", "user:bob", "user:carol"],
                "mode": "quorum",
                "quorum": 2,
                "on_approve": APPROVE,
            }
        ],
    )
    policy = new_policy(system, tenant)
    to_review(system, tenant, policy)
    approval = pending_approval(system, tenant, "alice", policy)
    assert decide(system, tenant, "alice", approval).json()["outcome"] is None
    assert decide(system, tenant, "carol", approval).json()["outcome"] == "approved"
    policy_status(system, tenant, policy, "approved")
    late = decide(system, tenant, "bob", approval)
    assert late.status_code == 409


def test_simultaneous_final_decisions_resume_once(system):
    tenant = "race"
    create_workflow(
        system,
        tenant,
        [
            {
                "kind": "require_approval",
                "approvers": ["user:alice", "user:bob"],
                "mode": "all",
                "on_approve": APPROVE,
            }
        ],
    )
    for round_ in range(3):
        policy = new_policy(system, tenant, f"Race {round_}")
        to_review(system, tenant, policy)
        approval = pending_approval(system, tenant, "alice", policy)
        clients = {u: as_user(system, tenant, u) for u in ("alice", "bob")}
        barrier = threading.Barrier(2)
        answers = {}

        def approve(user, clients=clients, barrier=barrier, answers=answers, approval=approval):
            barrier.wait()
            answers[user] = clients[user].post(
                f"/approvals/{approval['id']}/decision", json={"decision": "approve"}
            )

        threads = [threading.Thread(target=approve, args=(u,)) for u in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert [a.status_code for a in answers.values()] == [200, 200]
        assert sorted(str(a.json()["outcome"]) for a in answers.values()) == ["None", "approved"]
        policy_status(system, tenant, policy, "approved")
        (execution,) = poll(
            lambda policy=policy: [
                e
                for e in system.executions(tenant, status="completed")
                if e["entity_id"] == policy["id"]
            ],
            timeout=20,
            message="completed execution",
        )
        steps = system.execution(execution["id"], tenant=tenant)["steps"]
        assert [(s["key"], s["status"]) for s in steps] == [
            ("0", "waiting"),
            ("0", "completed"),
            ("0.0", "completed"),
        ]


def test_overdue_approval_is_escalated_by_the_scheduler(system, smtp):
    tenant = "overdue"
    create_workflow(
        system,
        tenant,
        [
            {
                "kind": "require_approval",
                "approvers": ["user:alice"],
                "due_in": "1s",
                "escalate_to": ["user:carol"],
                "on_approve": APPROVE,
            }
        ],
    )
    system.start_scheduler()
    policy = new_policy(system, tenant, "Late review")
    to_review(system, tenant, policy)
    approval = pending_approval(system, tenant, "alice", policy)
    for user in ("alice", "carol"):
        (note,) = inbox(system, tenant, user, "Overdue approval")
        assert approval["id"] in note["body"]
    smtp.wait_for(
        lambda m: (
            m["To"] == f"carol@{tenant}.example.org" and m["Subject"].startswith("Overdue approval")
        )
    )
    detail = as_user(system, tenant, "alice").get(f"/approvals/{approval['id']}").json()
    assert detail["overdue"] is True and detail["status"] == "pending"
    # still decidable after escalation
    assert decide(system, tenant, "alice", approval).json()["outcome"] == "approved"
    policy_status(system, tenant, policy, "approved")


# --------------------------------------------------------------------------- webhooks


def deliveries(system, tenant, status):
    client = as_user(system, tenant, "olivia")
    return client.get("/deliveries", params={"status": status}).json()["items"]


def tenant_webhook_secret(system, tenant):
    """The tenant's signing secret, as its admin learns it: by a rotation."""
    admin = as_user(system, tenant, "ada", roles=["admin"])
    rotated = admin.post("/webhook-secret/rotate")
    assert rotated.status_code == 201, rotated.text
    return rotated.json()["secret"]


def test_webhook_retried_until_the_receiver_accepts(system):
    tenant = "hook-flaky"
    secret = tenant_webhook_secret(system, tenant)
    with WebhookReceiver(secret, [500, 500, 200]) as receiver:
        create_workflow(
            system,
            tenant,
            [{"kind": "webhook", "url": receiver.url, "data": {"source": "test"}}],
            conditions=[],
            trigger="on_create",
        )
        policy = new_policy(system, tenant, "Hooked")
        (sent,) = poll(
            lambda: deliveries(system, tenant, "sent"), timeout=20, message="a sent delivery"
        )
        assert sent["attempts"] == 3 and sent["response_status"] == 200
        assert len(receiver.requests) == 3
        assert all(r.signature_ok for r in receiver.requests), receiver.requests
        ids = {r.headers["X-Delivery-Id"] for r in receiver.requests}
        assert ids == {sent["id"]}  # the same delivery, retried
        body = yaml.safe_load(receiver.requests[-1].body)  # JSON is YAML
        assert body["entity"]["id"] == policy["id"] and body["data"] == {"source": "test"}


def test_notify_posts_one_signed_webhook_per_recipient(system):
    tenant = "hook-notify"
    with WebhookReceiver(tenant_webhook_secret(system, tenant), [200, 200]) as receiver:
        create_workflow(
            system,
            tenant,
            [
                {
                    "kind": "notify",
                    "recipients": ["owner", "user:carol"],
                    "channels": ["webhook"],
                    "webhook_url": receiver.url,
                    "subject": "{{ entity.title }} was created",
                }
            ],
            conditions=[],
            trigger="on_create",
        )
        policy = new_policy(system, tenant, "Announced")
        sent = poll(
            lambda: (
                len(deliveries(system, tenant, "sent")) == 2 and deliveries(system, tenant, "sent")
            ),
            timeout=20,
            message="two sent deliveries",
        )
        assert {d["channel"] for d in sent} == {"webhook"}
        assert len(receiver.requests) == 2 and all(r.signature_ok for r in receiver.requests)
        bodies = [yaml.safe_load(r.body) for r in receiver.requests]  # JSON is YAML
        assert sorted(b["recipient"]["user"] for b in bodies) == sorted([policy["owner"], "carol"])
        assert {b["subject"] for b in bodies} == {"Announced was created"}
        assert {b["entity"]["id"] for b in bodies} == {policy["id"]}


def test_notify_refuses_the_webhook_channel_without_a_url(system):
    client = as_user(system, "hook-nourl", "olivia")
    body = {
        "name": "no url",
        "entity_type": "policy",
        "trigger": "on_create",
        "steps": [
            {"kind": "notify", "recipients": ["owner"], "channels": ["webhook"], "subject": "x"}
        ],
    }
    resp = client.post("/workflows", json=body)
    assert resp.status_code == 422, resp.text
    assert "webhook_url" in resp.json()["description"]


def test_webhook_client_error_is_not_retried(system):
    tenant = "hook-400"
    with WebhookReceiver(WEBHOOK_SECRET, [400]) as receiver:
        create_workflow(
            system,
            tenant,
            [{"kind": "webhook", "url": receiver.url}],
            conditions=[],
            trigger="on_create",
        )
        new_policy(system, tenant, "Refused")
        (failed,) = poll(
            lambda: deliveries(system, tenant, "failed"), timeout=20, message="a failed delivery"
        )
        assert failed["attempts"] == 1 and failed["response_status"] == 400
        assert "scripted" in failed["response"]
        assert len(receiver.requests) == 1
