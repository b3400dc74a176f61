"""A write's job tells how all of its work stands, end to end.

Both services, a real worker on the policy and notification queues, an SMTP server and
a webhook receiver in this process. The write's job (the dispatch job the api hands
out) rolls up what it started: it waits, naming the approvers, while the approval is
pending; it succeeds once the decision's work is done; a webhook that failed two levels
below fails it, naming the delivery job; deleting the policy under review closes the
approval and the write's job reads cancelled instead of waiting.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.notifications.receivers import SmtpServer, WebhookReceiver
from tests.support import ROOT, poll
from tests.system import System

pytestmark = pytest.mark.e2e

TENANTS = ("tree-wait", "tree-fail", "tree-delete")
PEOPLE = {"olivia": ["editor"], "bob": ["approver"], "carol": ["approver"]}


@pytest.fixture(scope="module")
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def system(tmp_path_factory, make_database_url, redis_url, smtp):
    log_dir = tmp_path_factory.mktemp("tree-system")
    env = {
        "RETRY_DELAY_SCALE": "0.05",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_FROM": "governance@example.org",
        "WEBHOOK_SECRET": "e2e-webhook-secret",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",  # the receiver is on 127.0.0.1
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
        yield running


def api(system, tenant):
    return system.api_client(sub="olivia", roles=["editor"], tenant=tenant)


def tree_of(system, tenant, job_id, wanted):
    """Poll the api's /jobs/{id} until its tree_state is ``wanted``; the record."""
    client = api(system, tenant)

    def check():
        response = client.get(f"/jobs/{job_id}")
        return (
            response.status_code == 200
            and response.json()["tree_state"] == wanted
            and (response.json())
        )

    return poll(check, timeout=30, message=f"job {job_id} tree_state {wanted}")


def test_a_write_waits_for_its_approver_then_succeeds(system):
    tenant = "tree-wait"
    olivia = system.workflow_client(sub="olivia", roles=["editor"], tenant=tenant)
    made = olivia.post("/workflows/from-template/policy-approval")
    assert made.status_code == 201, made.text
    policy = api(system, tenant).post(
        "/policies", json={"title": "Access control", "policy_type": "security"}
    )
    assert policy.status_code == 201, policy.text
    policy = policy.json()

    # When olivia sends the policy for review
    moved = api(system, tenant).post(
        f"/policies/{policy['id']}/transitions", json={"to": "in_review"}
    )
    assert moved.status_code == 200, moved.text
    [job] = moved.json()["jobs"]

    # Then the write's job waits, naming the approvers, although it succeeded itself
    record = tree_of(system, tenant, job["id"], "waiting")
    assert record["state"] == "succeeded"
    waiting = record["tree_cause"]["waiting"]
    assert waiting["status"] == "waiting_approval"
    assert sorted(waiting["approvers"]) == ["bob", "carol"]
    assert waiting["execution_id"] and waiting["approval_id"]
    assert record["subject"]["entity_title"] == "Access control"
    run = api(system, tenant).get(record["tree_cause"]["href"]).json()
    assert run["parent"] == job["id"]
    assert run["subject"]["workflow_name"] == made.json()["name"]
    assert run["subject"]["entity_title"] == "Access control"
    waiting_list = api(system, tenant).get("/jobs", params={"tree_state": "waiting"}).json()
    assert job["id"] in [j["id"] for j in waiting_list["items"]]

    # When bob approves
    bob = system.workflow_client(sub="bob", roles=["approver"], tenant=tenant)
    decided = bob.post(
        f"/approvals/{waiting['approval_id']}/decision", json={"decision": "approve"}
    )
    assert decided.status_code == 200, decided.text

    # Then the resumed run is below the parked one, and the write's job succeeds once
    # everything below it has (the move to approved, the owner's notices)
    record = tree_of(system, tenant, job["id"], "succeeded")
    assert record["tree_cause"] is None
    run = api(system, tenant).get(f"/jobs/{run['id']}").json()
    assert run["waiting"] is None
    assert decided.json()["job"]["id"] in [c["id"] for c in run["children"]["items"]]
    # No internal Redis key names anywhere in the job's answers
    for body in (record, run):
        assert f"{system.namespace}:" not in json.dumps(body)


def test_a_webhook_failed_below_fails_the_write_naming_it(system):
    tenant = "tree-fail"
    with WebhookReceiver("e2e-webhook-secret", [400]) as receiver:
        body = {
            "name": "tell the receiver",
            "entity_type": "policy",
            "trigger": "on_create",
            "status": "active",
            "steps": [{"kind": "webhook", "url": receiver.url}],
        }
        olivia = system.workflow_client(sub="olivia", roles=["editor"], tenant=tenant)
        assert olivia.post("/workflows", json=body).status_code == 201
        created = api(system, tenant).post(
            "/policies", json={"title": "Refused", "policy_type": "security"}
        )
        assert created.status_code == 201, created.text
        [job] = created.json()["jobs"]

        record = tree_of(system, tenant, job["id"], "failed")
    assert record["state"] == "succeeded"
    cause = record["tree_cause"]
    assert cause["error"]["type"] == "PermanentDeliveryError"
    assert "400" in cause["error"]["message"]
    delivery = api(system, tenant).get(cause["href"]).json()
    assert delivery["state"] == "failed" and delivery["queue"] == "governance.notification"
    # two levels down: the write's job -> the run job -> the delivery job
    run = api(system, tenant).get(f"/jobs/{delivery['parent']}").json()
    assert run["parent"] == job["id"] and run["tree_state"] == "failed"

    # The failed writes are found without walking trees, on both services
    failed = api(system, tenant).get("/jobs", params={"tree_state": "failed"}).json()
    assert [j["id"] for j in failed["items"]] == [job["id"]]
    admin = system.workflow_client(sub="ada", roles=["admin"], tenant=tenant)
    failed = admin.get("/jobs", params={"tree_state": "failed"}).json()
    assert [j["id"] for j in failed["items"]] == [job["id"]]
    assert failed["items"][0]["tree_cause"]["job_id"] == delivery["id"]
    combined = api(system, tenant).get("/jobs", params={"tree_state": "failed", "state": "failed"})
    assert combined.status_code == 400


def test_deleting_a_policy_in_review_ends_the_write_s_wait(system):
    tenant = "tree-delete"
    olivia = system.workflow_client(sub="olivia", roles=["editor"], tenant=tenant)
    assert olivia.post("/workflows/from-template/policy-approval").status_code == 201
    policy = api(system, tenant).post(
        "/policies", json={"title": "Retention", "policy_type": "security"}
    )
    assert policy.status_code == 201, policy.text
    policy = policy.json()
    # Given: the policy sent to review, its write's job waiting for the approvers
    moved = api(system, tenant).post(
        f"/policies/{policy['id']}/transitions", json={"to": "in_review"}
    )
    assert moved.status_code == 200, moved.text
    [job] = moved.json()["jobs"]
    waiting = tree_of(system, tenant, job["id"], "waiting")["tree_cause"]["waiting"]

    # When: the policy is deleted
    assert api(system, tenant).delete(f"/policies/{policy['id']}").status_code == 200

    # Then: the approval closes, and the write's job no longer waits: it reads
    # cancelled, naming why
    bob = system.workflow_client(sub="bob", roles=["approver"], tenant=tenant)

    def closed():
        approval = bob.get(f"/approvals/{waiting['approval_id']}").json()
        return approval["status"] == "cancelled" and approval

    approval = poll(closed, timeout=30, message="the approval closed")
    assert "deleted" in approval["closed_reason"]
    record = tree_of(system, tenant, job["id"], "cancelled")
    assert record["tree_cause"]["waiting"] is None
    assert "deleted" in record["tree_cause"]["ended"]["reason"]
    run = api(system, tenant).get(record["tree_cause"]["href"]).json()
    assert run["waiting"] is None and run["tree_state"] == "cancelled"
    listed = api(system, tenant).get("/jobs", params={"tree_state": "waiting"}).json()
    assert job["id"] not in [j["id"] for j in listed["items"]]
